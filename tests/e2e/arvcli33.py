"""A stand-in for the Arvados SDK's ``arvados.commands.arvcli`` as the main branch
after 3.2.1 has it (``sdk/python/arvados/commands/arvcli.py``), until a release
ships it: the global options, ``keep``/``ws``/``copy`` run as external
command modules listed in ``ArvCLIArgumentParser.external_command_modules``
(``keep docker`` hard-wired to the SDK's keepdocker), a subcommand per
resource of the discovery document with a sub-subcommand per method, and
``dispatch()`` that builds the API client first. Written for these tests:
only its shape follows upstream.
"""

import argparse
import importlib
import json
import sys

import arvados


class ArvCLIArgumentParser(argparse.ArgumentParser):
    global_args = frozenset({"dry_run", "verbose", "format", "subcommand", "method"})
    external_command_modules = {
        "keep ls": "arvados.commands.ls",
        "keep get": "arvados.commands.get",
        "keep put": "arvados.commands.put",
        "keep docker": "arvados.commands.keepdocker",
        "ws": "arvados.commands.ws",
        "copy": "arvados.commands.arv_copy",
    }

    def __init__(self, resources):
        super().__init__(prog="arv", description="Arvados command line client")
        self.add_argument("-n", "--dry-run", action="store_true")
        self.add_argument("-v", "--verbose", action="store_true")
        self.add_argument("-f", "--format", choices=["json", "yaml", "uuid"], default="json")
        self.add_argument("-s", "--short", dest="format", action="store_const", const="uuid")
        commands = self.add_subparsers(dest="subcommand", required=True,
                                       parser_class=argparse.ArgumentParser)
        commands.add_parser("keep", add_help=False).add_argument(
            "method", choices=["ls", "get", "put", "docker"])
        commands.add_parser("ws", add_help=False)
        commands.add_parser("copy", add_help=False)
        self.resource_of = {}
        for plural, schema in resources.items():
            name = plural[:-1] if plural.endswith("s") else plural
            self.resource_of[name] = plural
            methods = commands.add_parser(name).add_subparsers(dest="method")
            for method, method_schema in (schema.get("methods") or {}).items():
                parser = methods.add_parser(method)
                for key, param in (method_schema.get("parameters") or {}).items():
                    kind = param.get("type")
                    parser.add_argument("--" + key.replace("_", "-"), dest=key,
                                        type=int if kind == "integer" else (
                                            json.loads if kind in ("array", "object") else str))


def dispatch(arguments=None):
    api = arvados.api("v1")
    parser = ArvCLIArgumentParser(api._resourceDesc["resources"])
    args, rest = parser.parse_known_args(arguments)
    method = getattr(args, "method", None)
    module = parser.external_command_modules.get(
        f"{args.subcommand} {method}" if method else args.subcommand)
    if module is not None:
        sys.exit(importlib.import_module(module).main(rest))
    resource = getattr(api, parser.resource_of[args.subcommand])()
    params = {k: v for k, v in vars(args).items()
              if k not in parser.global_args and v is not None}
    result = getattr(resource, method)(**params).execute()
    if args.format == "uuid":
        for item in result.get("items", [result]):
            print(item["uuid"])
    else:
        json.dump(result, sys.stdout, indent=1)
        print()
    sys.exit(0)
