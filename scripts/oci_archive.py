#!/usr/bin/env python3
"""Writes a single-layer OCI image archive (an OCI image layout in a tar) from
files on disk, without a container engine and without a base image.

Everything is deterministic: entries are sorted, owned by 0:0 with fixed
modes, timestamped with --created (seconds since the epoch, e.g. the commit's
time), and gzip carries no name or time. The same inputs give the same digest.

The archive names the image in both annotations containerd and other OCI tools
read (`io.containerd.image.name`, `org.opencontainers.image.ref.name`), so
`ctr images import` and `skopeo copy oci-archive:...` find it by name.

Usage:
  oci_archive.py --name flowfed/flowfed:0.1.0 --out target/image/flowfed.oci.tar \
      --file target/.../flowfed:flowfed:0755 --file /etc/ssl/certs/ca-certificates.crt:etc/ssl/certs/ca-certificates.crt:0644 \
      --entrypoint /flowfed --cmd run --user 65532:65532 --created 1700000000
Prints the manifest digest (sha256:...) on stdout.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import tarfile


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files, created):
    """An uncompressed layer: parent directories first, then files, sorted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for _, dest, _ in files:
            parts = dest.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        entries = [(d, None, 0o755) for d in dirs] + [(d, s, m) for s, d, m in files]
        for dest, src, mode in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(dest)
            info.mtime, info.uid, info.gid, info.uname, info.gname = created, 0, 0, "", ""
            info.mode = mode
            if src is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                with open(src, "rb") as f:
                    data = f.read()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def parse_file(spec):
    parts = spec.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--file wants SRC:DEST:MODE, got {spec!r}")
    src, dest, mode = parts
    return src, dest.lstrip("/"), int(mode, 8)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="image name with tag, e.g. flowfed/flowfed:0.1.0")
    p.add_argument("--out", required=True, help="archive to write")
    p.add_argument("--file", type=parse_file, action="append", required=True, help="SRC:DEST:MODE (octal)")
    p.add_argument("--entrypoint", action="append", default=[])
    p.add_argument("--cmd", action="append", default=[])
    p.add_argument("--user", default="")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--created", type=int, default=0, help="seconds since the epoch")
    args = p.parse_args()

    repository, tag = args.name.rsplit(":", 1)
    # A reference without a registry host means Docker Hub, as kubelet and ctr read it.
    registry = repository.split("/")[0]
    full_name = repository if "." in registry or ":" in registry else "docker.io/" + repository
    created_iso = datetime.datetime.fromtimestamp(args.created, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    layer = layer_tar(args.file, args.created)
    layer_gz = gzip.compress(layer, compresslevel=9, mtime=0)
    config = {
        "created": created_iso,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": args.user,
            "Env": ["PATH=/"] + args.env,
            "Entrypoint": args.entrypoint,
            "Cmd": args.cmd,
            "WorkingDir": "/",
            "Labels": dict(label.split("=", 1) for label in args.label),
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        "history": [{"created": created_iso, "created_by": "flowfed oci_archive.py"}],
    }
    config_json = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config_json), "size": len(config_json)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer_gz), "size": len(layer_gz)}],
    }
    manifest_json = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": manifest["mediaType"],
            "digest": sha256(manifest_json),
            "size": len(manifest_json),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": f"{full_name}:{tag}", "org.opencontainers.image.ref.name": tag},
        }],
    }
    blobs = {sha256(b): b for b in (layer_gz, config_json, manifest_json)}
    members = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
               ("index.json", json.dumps(index, sort_keys=True, separators=(",", ":")).encode())]
    members += [(f"blobs/sha256/{digest.split(':')[1]}", data) for digest, data in sorted(blobs.items())]

    # Written beside the target and renamed: a reader never sees half an archive.
    partial = f"{args.out}.{os.getpid()}.partial"
    with open(partial, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, args.created
            tar.addfile(info)
        for path, data in members:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, args.created
            tar.addfile(info, io.BytesIO(data))
    os.replace(partial, args.out)
    print(sha256(manifest_json))


if __name__ == "__main__":
    main()
