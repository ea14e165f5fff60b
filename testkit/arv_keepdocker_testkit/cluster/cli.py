"""``arv-keepdocker-cluster``: run a local Arvados-compatible cluster for tests and demos.

::

    eval "$(arv-keepdocker-cluster start --dir DIR)"   # background; prints alice's env
    arv-keepdocker-cluster env --dir DIR --user bob      # another user's env lines
    arv-keepdocker-cluster stop --dir DIR
    arv-keepdocker-cluster serve --dir DIR               # foreground (Ctrl-C stops)

``--docker-image-formats v1,v2`` sets the formats the cluster publishes
(``''`` publishes none); the choice is kept in DIR for later starts.
"""

import argparse
import logging
import os
import signal
import sys
import threading

from .cluster import USERS, Cluster, ClusterError
from .settings import Settings, parse_image_formats


def _formats(text):
    try:
        return parse_image_formats(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser():
    parser = argparse.ArgumentParser(prog="arv-keepdocker-cluster",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add_common(p, port=True, formats=True):
        p.add_argument("--dir", required=True, help="cluster directory (created if missing)")
        if port:
            p.add_argument("--port", type=int, default=None,
                           help="port to listen on (default: the previous one if free, else any)")
        if formats:
            p.add_argument("--docker-image-formats", type=_formats, default=None, metavar="LIST",
                           help="comma-separated image formats to publish, e.g. v2 or v1,v2;"
                                " '' for none (default: v2, or what DIR was last started with)")
            p.add_argument("--cluster-id", default=None,
                           help="5-character cluster id for a new DIR (default zzzzz)")

    add_common(sub.add_parser("start",
                              help="start in the background and print alice's environment"))
    serve_parser = sub.add_parser("serve", help="run in the foreground")
    add_common(serve_parser)
    serve_parser.add_argument("--owner-pid", type=int, default=None,
                              help="stop when this process is gone")
    add_common(sub.add_parser("stop", help="stop the cluster running in DIR"),
               port=False, formats=False)
    env = sub.add_parser("env", help="print the ARVADOS_* lines for a user")
    add_common(env, port=False, formats=False)
    env.add_argument("--user", default="alice", choices=USERS)
    add_common(sub.add_parser("status", help="say whether the cluster in DIR runs"), port=False,
               formats=False)
    return parser


def cmd_start(args):
    cluster = Cluster(args.dir, port=args.port, docker_image_formats=args.docker_image_formats,
                      cluster_id=args.cluster_id)
    if cluster.running() and (
            args.docker_image_formats is None
            or args.docker_image_formats == cluster.settings.docker_image_formats):
        cluster.wait_ready()
        print("# cluster already running in %s (pid %d)" % (cluster.dir, cluster.pid()),
              file=sys.stderr)
    else:
        cluster.start()
        print("# cluster running in %s (pid %d, log %s)"
              % (cluster.dir, cluster.pid(), cluster.log_file), file=sys.stderr)
    sys.stdout.write(cluster.env_lines("alice"))
    return 0


def cmd_env(args):
    cluster = Cluster(args.dir)
    sys.stdout.write(cluster.env_lines(args.user))
    return 0


def cmd_stop(args):
    cluster = Cluster(args.dir)
    pid = cluster.pid()
    cluster.stop()
    print("stopped cluster in %s (pid %d)" % (cluster.dir, pid) if pid else
          "no cluster running in %s" % cluster.dir)
    return 0


def cmd_status(args):
    cluster = Cluster(args.dir)
    pid = cluster.pid()
    if pid is None:
        print("not running (%s)" % cluster.dir)
        return 1
    print("running: pid %d, https://%s/" % (pid, cluster.api_host))
    return 0


def cmd_serve(args):
    """Serve in the foreground; writes DIR/cluster.pid and DIR/cluster.ready."""
    from .server import serve

    cluster = Cluster(args.dir, port=args.port, docker_image_formats=args.docker_image_formats,
                      cluster_id=args.cluster_id)
    if cluster.running() and cluster.pid() != os.getpid():
        raise ClusterError("a cluster is already running in %s (pid %d)"
                           % (cluster.dir, cluster.pid()))
    settings = cluster.prepare()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    cluster.pid_file.write_text("%d\n" % os.getpid())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.owner_pid:
        threading.Thread(target=_watch_owner, args=(args.owner_pid, stop), daemon=True).start()

    def ready(port):
        cluster.write_env()
        cluster.ready_file.write_text("%d %d\n" % (os.getpid(), port))
        logging.info("serving https://127.0.0.1:%d/ from %s", port, cluster.dir)

    try:
        serve(Settings(settings.dir), args.port or 0, str(cluster.dir / "tls" / "server.pem"),
              str(cluster.dir / "tls" / "server.key"), ready=ready, stop_event=stop)
    finally:
        for path in (cluster.ready_file, cluster.pid_file):
            try:
                if path.read_text().split()[0] == str(os.getpid()):
                    path.unlink()
            except (OSError, IndexError):
                pass
    return 0


def _watch_owner(pid, stop):
    """Set ``stop`` once process ``pid`` has exited."""
    from .cluster import pid_alive

    while not stop.wait(1.0):
        if not pid_alive(pid):
            logging.info("owner process %d is gone: stopping", pid)
            stop.set()


COMMANDS = {"start": cmd_start, "serve": cmd_serve, "stop": cmd_stop, "env": cmd_env,
            "status": cmd_status}


def main(arguments=None):
    args = build_parser().parse_args(arguments)
    try:
        return COMMANDS[args.command](args)
    except (ClusterError, OSError, RuntimeError) as err:
        print("arv-keepdocker-cluster: %s" % err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
