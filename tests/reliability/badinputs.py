"""Generated bad inputs: references, truncated and bit-flipped archives, hostile
tar members and hostile JSON. Each case is ``(id, arguments, expected exits)``;
files are written under a directory the caller gives.

Every case must end the same way: one line on stderr, exit 1 (2 for a
command-line usage error), nothing written in Arvados, bounded memory.
Seeded, so a failing case can be rerun by its id.
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
from collections.abc import Iterator

from arv_keepdocker_testkit import imagebuild as ib

SEED = 20261130
Case = tuple[str, list[str], tuple[int, ...]]


def small_image(tag="bad/input:1"):
    return ib.build_image([{"etc/a": b"a" * 3000}, {"bin/b": b"#!/bin/sh\n" * 50}],
                          repo_tags=[tag])


def archive_bytes(image, layout="classic") -> bytes:
    out = io.BytesIO()
    ib.write_docker_archive(out, [image], layout=layout)
    return out.getvalue()


def members_of(data: bytes):
    """``[(TarInfo, payload)]`` of a tar in memory."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]


def rebuild(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, payload in members:
            info = tarfile.TarInfo(info.name) if isinstance(info, str) else info
            if info.isreg():
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return out.getvalue()


def reg(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def with_manifest(members, manifest) -> bytes:
    kept = [(i, p) for i, p in members if i.name != "manifest.json"]
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    return rebuild(kept + [reg("manifest.json", body)])


# -- references -------------------------------------------------------------------

def references(root: str) -> Iterator[Case]:
    rng = random.Random(SEED)
    fixed = [
        ("empty-transport-path", ["docker-archive:"], (1,)),
        ("oci-empty-path", ["oci-archive:"], (1,)),
        ("bad-index", [f"docker-archive:{root}/x.tar:@x"], (1,)),
        ("index-and-tag", [f"docker-archive:{root}/x.tar:@0", "t"], (1,)),
        ("tag-twice", ["app:1", "2"], (1,)),
        ("unknown-source", ["--source", "nope", "app:1"], (1,)),
        ("upper-case-name", ["docker-daemon:Upper/Case:1"], (1,)),
        ("double-slash", ["docker-daemon:a//b:1"], (1,)),
        ("bad-platform", ["--platform", "linux", f"oci-archive:{root}/x.tar"], (1,)),
        ("bad-platform-4", ["--platform", "a/b/c/d", f"oci-archive:{root}/x.tar"],
         (1,)),
        ("bad-project", ["--project-uuid", "not-a-uuid", "docker-archive:/x"], (1,)),
        ("unknown-flag", ["--no-such-flag", "x"], (2,)),
        ("retries-not-int", ["--retries", "many", "x"], (2,)),
        ("oci-tag-arg", [f"oci-archive:{root}/x.tar", "tag"], (1,)),
    ]
    yield from fixed
    alphabet = "aZ09:/@._-\x1b\x00\n\t\u202e%\\ "
    for n in range(60):
        length = rng.randint(1, 80)
        text = "".join(rng.choice(alphabet) for _ in range(length))
        # Never a valid bare name that an engine could answer: always a
        # transport with a path that does not exist, or control characters.
        transport = rng.choice(["docker-archive", "oci-archive", "oci", "docker-daemon",
                                "containers-storage"])
        if transport in ("docker-daemon", "containers-storage"):
            text = "\x1b[31m" + text + "\x07"
        else:
            text = f"{root}/missing-{n}{text}"
        yield (f"random-ref-{n}", [f"{transport}:{text}"], (1,))


# -- archives ---------------------------------------------------------------------

def data_end(data: bytes) -> int:
    """Where the last member's data ends (the rest is end-of-archive zeros)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return max(m.offset_data + m.size for m in tar)


def truncated(root: str) -> Iterator[Case]:
    """Cut anywhere before the end of the last member's data."""
    rng = random.Random(SEED + 1)
    for layout in ("classic", "docker25"):
        for n in range(30):
            data = archive_bytes(small_image(f"bad/truncated{n}:{layout}"), layout)
            cut = rng.randrange(1, data_end(data))
            yield _file(root, f"truncated-{layout}-{n}", data[:cut])


def bit_flipped(root: str) -> Iterator[Case]:
    """One bit flipped inside a layer or the config: what a loader checks by digest.

    Each case is an image of its own, so that no case can pass by reusing an
    image another case stored.
    """
    rng = random.Random(SEED + 2)
    for layout in ("classic", "docker25"):
        for n in range(50):
            image = ib.build_image([{"etc/a": b"a" * 3000}, {"n": str(n).encode() * 100}],
                                   repo_tags=[f"bad/flip:{layout}-{n}"])
            data = archive_bytes(image, layout)
            manifest = json.loads(next(p for i, p in members_of(data)
                                       if i.name == "manifest.json"))[0]
            checked = set(manifest["Layers"]) | {manifest["Config"]}
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                regions = [(m.offset_data, m.size) for m in tar
                           if m.isreg() and m.size and m.name in checked]
            offset, size = rng.choice(regions)
            at = offset + rng.randrange(size)
            flipped = bytearray(data)
            flipped[at] ^= 1 << rng.randrange(8)
            yield _file(root, f"bitflip-{layout}-{n}-{at}", bytes(flipped))


def hostile_members(root: str) -> Iterator[Case]:
    image = small_image()
    base = members_of(archive_bytes(image))

    def hostile(name, extra, fmt=tarfile.PAX_FORMAT):
        return _file(root, "member-" + name, rebuild(base + extra, fmt))

    def special(name, kind, linkname=""):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        return info, b""

    yield hostile("absolute", [reg("/etc/passwd", b"x")])
    yield hostile("dotdot", [reg("../escape", b"x")])
    yield hostile("dotdot-inner", [reg("a/../../x", b"x")])
    yield hostile("symlink-out", [special("evil", tarfile.SYMTYPE, "../../etc/passwd")])
    yield hostile("symlink-abs", [special("evil", tarfile.SYMTYPE, "/etc/passwd")])
    yield hostile("hardlink", [special("hard", tarfile.LNKTYPE, "manifest.json")])
    yield hostile("fifo", [special("fifo", tarfile.FIFOTYPE)])
    yield hostile("chardev", [special("tty", tarfile.CHRTYPE)])
    yield hostile("blockdev", [special("sda", tarfile.BLKTYPE)])
    yield hostile("duplicate-manifest", [reg("manifest.json", b"[]")])
    first_layer = next(i.name for i, _ in base if i.name.endswith("layer.tar"))
    yield hostile("duplicate-layer", [reg(first_layer, b"other")])
    yield _file(root, "member-nul-name", _pax(base, b"path=a\0b\n"))
    # Headers that declare more than they hold, or more than we accept.
    yield _file(root, "member-huge-pax", _huge_extension(base, tarfile.XHDTYPE, 5 << 30))
    yield _file(root, "member-huge-gnu-longname",
                _huge_extension(base, tarfile.GNUTYPE_LONGNAME, 3 << 30))
    yield _file(root, "member-pax-2mib", _huge_extension(base, tarfile.XHDTYPE, 2 << 20))
    yield _file(root, "member-bad-pax-size", _pax(base, b"size=-5\n"))
    yield _file(root, "member-bad-pax-record", _pax(base, b"garbage\n"))
    yield _file(root, "member-100000-tiny", _many_members(base, 100_000))
    yield _file(root, "member-zero-blocks-only", b"\0" * 10240)
    yield _file(root, "member-not-tar", b"this is not a tar archive\n" * 100)
    yield _file(root, "member-empty", b"")
    yield _file(root, "member-one-header-only", rebuild(base)[:512])
    fake_huge = bytearray(rebuild(base)[:512])
    fake_huge[124:136] = b"%011o\0" % (8 << 30)  # a member claiming 8 GiB
    _fix_checksum(fake_huge)
    yield _file(root, "member-claims-8gib", bytes(fake_huge) + b"\0" * 1024)


def hostile_json(root: str) -> Iterator[Case]:
    image = small_image()
    for layout in ("classic", "docker25"):
        base = members_of(archive_bytes(image, layout))
        manifest = json.loads(next(p for i, p in base if i.name == "manifest.json"))
        entry = manifest[0]
        config_name = entry["Config"]
        variants = {
            "deep-1m": b"[" * 1_000_000 + b"]" * 1_000_000,
            "deep-obj": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
            "huge": b"[" + b" " * (5 << 20) + b"]",
            "not-list": {"Config": config_name},
            "empty-list": [],
            "two-images": [entry, entry],
            "no-config": [{"Layers": entry["Layers"]}],
            "config-int": [dict(entry, Config=7)],
            "layers-str": [dict(entry, Layers="x")],
            "layers-int": [dict(entry, Layers=[1, 2])],
            "missing-layer": [dict(entry, Layers=entry["Layers"] + ["nope/layer.tar"])],
            "missing-config": [dict(entry, Config="nope.json")],
            "fewer-layers": [dict(entry, Layers=entry["Layers"][:1])],
            "swapped-layers": [dict(entry, Layers=entry["Layers"][::-1])],
            "config-is-layer": [dict(entry, Config=entry["Layers"][0])],
            "repotags-int": [dict(entry, RepoTags=5)],
            "not-utf8": b"\xff\xfe[\x00",
            "nan": b"[NaN]",
            "truncated": json.dumps(manifest).encode()[:-3],
            "root-member": [dict(entry, Config=".")],
        }
        for name, body in variants.items():
            yield _file(root, f"json-{layout}-manifest-{name}",
                        with_manifest(base, body))
        configs = {
            "deep": b"[" * 1_000_000 + b"]" * 1_000_000,
            "not-object": b"[1, 2]",
            "no-rootfs": json.dumps({"architecture": "amd64"}).encode(),
            "diff-ids-str": json.dumps({"rootfs": {"diff_ids": "x"}}).encode(),
            "diff-ids-short": json.dumps(dict(image.config, rootfs={
                "type": "layers", "diff_ids": image.config["rootfs"]["diff_ids"][:1]})).encode(),
            "diff-ids-wrong": json.dumps(dict(image.config, rootfs={
                "type": "layers", "diff_ids": ["sha256:" + "0" * 64] * 2})).encode(),
            "huge": b"{" + b" " * (5 << 20) + b"}",
        }
        for name, body in configs.items():
            # A config member renamed to its new digest would be another image;
            # keep the old name so digest-named configs are caught too.
            members = [(i, body if i.name == config_name else p) for i, p in base]
            yield _file(root, f"json-{layout}-config-{name}", rebuild(members))


def oci_variants(root: str) -> Iterator[Case]:
    """OCI archives with a broken index, manifest or blob."""
    image = small_image()
    out = io.BytesIO()
    ib.write_oci_layout(out, [("1", image)])
    base = members_of(out.getvalue())
    index = json.loads(next(p for i, p in base if i.name == "index.json"))
    manifest_name = "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]
    variants = {
        "index-deep": b"{" * 0 + b"[" * 1_000_000 + b"]" * 1_000_000,
        "index-not-object": b"[]",
        "index-no-manifests": json.dumps({"schemaVersion": 2}).encode(),
        "index-bad-digest": json.dumps({"schemaVersion": 2, "manifests": [
            {"digest": "md5:abc", "mediaType": ib.MT_OCI_MANIFEST, "size": 1}]}).encode(),
        "index-missing-blob": json.dumps({"schemaVersion": 2, "manifests": [
            {"digest": "sha256:" + "e" * 64, "mediaType": ib.MT_OCI_MANIFEST,
             "size": 10}]}).encode(),
    }
    for name, body in variants.items():
        members = [(i, body if i.name == "index.json" else p) for i, p in base]
        yield _file(root, "oci-" + name, rebuild(members), transport="oci-archive")
    for name, body in {"manifest-corrupt": b"{garbage", "manifest-deep": b"[" * 500_000}.items():
        members = [(i, body if i.name == manifest_name else p) for i, p in base]
        yield _file(root, "oci-" + name, rebuild(members), transport="oci-archive")


def all_cases(root: str) -> list[Case]:
    cases: list[Case] = []
    for generate in (references, truncated, bit_flipped, hostile_members, hostile_json,
                     oci_variants):
        cases.extend(generate(root))
    return cases


# -- helpers ----------------------------------------------------------------------

def _file(root: str, name: str, data: bytes, transport: str = "docker-archive") -> Case:
    path = os.path.join(root, name + ".tar")
    with open(path, "wb") as f:
        f.write(data)
    return (name, [f"{transport}:{path}"], (1,))


def _fix_checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)


def _huge_extension(base, kind: bytes, size: int) -> bytes:
    """A PAX/GNU extension header declaring ``size`` bytes, followed by a little data."""
    info = tarfile.TarInfo("././@LongLink" if kind != tarfile.XHDTYPE else "pax")
    info.type = kind
    info.size = size
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT)[-512:])
    header[156:157] = kind
    if size >= 8 ** 11:
        # GNU base-256 size field, as tar writes sizes over 8 GiB.
        header[124:136] = b"\x80" + size.to_bytes(11, "big")
    else:
        header[124:136] = b"%011o\0" % size
    _fix_checksum(header)
    return bytes(header) + b"x" * 4096 + rebuild(base)


def _pax(base, record_body: bytes) -> bytes:
    record = b"%d %s" % (len(record_body) + 3, record_body)
    info = tarfile.TarInfo("pax")
    info.type = tarfile.XHDTYPE
    info.size = len(record)
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[156:157] = tarfile.XHDTYPE
    _fix_checksum(header)
    return bytes(header) + record + b"\0" * (-len(record) % 512) + rebuild(base)


def _many_members(base, count: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for n in range(count):
            info = tarfile.TarInfo(f"m/{n}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        for info, payload in base:
            if info.isreg():
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return out.getvalue()
