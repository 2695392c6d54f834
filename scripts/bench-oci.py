#!/usr/bin/env python3
"""OCI model benchmarks against a local registry (Debian's docker-registry on loopback).

  start  `kaito serve --model oci://…` until /ready answers: on an empty model store (cold: the
         pull is part of it), on the store that run left (warm), and `kaito serve --model FILE`
         (the same GGUF by path) — alternated, RUNS times each; medians printed.
  pull   pull throughput: `kaito pull oci://…` into an empty store against `skopeo copy` of the
         same artifact into an empty directory, alternated, with `dd` writing the same number of
         bytes to the same disk (conv=fsync; with several files also FILES dd writers at once,
         as kaito writes the layers) and the registry's own read of every layer to /dev/null (curl)
         as the ceilings. The artifact is a checkpoint
         directory of FILES random-weight safetensors shards (plus config.json) packaged by
         `kaito model package --push`; with --files 1, one random layer pushed by hand.

  cpu    wall, user and system seconds (`/usr/bin/time`) of `kaito pull` and `skopeo copy` of the
         same FILES-file artifact: where a pull's time goes when the CPUs are the limit.

  scripts/bench-oci.py start [--runs 5]
  scripts/bench-oci.py pull [--runs 3] [--size-mib 1024] [--files 4]
  scripts/bench-oci.py cpu [--runs 2] [--size-mib 1024] [--files 4]

KAITO_BIN (default target/release/kaito) is the binary measured. Needs docker-registry and skopeo
(scripts/bootstrap.sh installs both). Nothing here is a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KAITO = os.environ.get("KAITO_BIN", str(ROOT / "target" / "release" / "kaito"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, work: Path):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = work / "registry.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage:\n  filesystem: {{rootdirectory: {work / 'registry'}}}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("docker-registry did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def run(cmd: list[str], **kw) -> str:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    return out.stdout


def time_to_ready(model: str, cache: Path) -> float:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [KAITO, "serve", "--model", model, "--port", str(port), "--threads", "1",
         "--cache-dir", str(cache)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"kaito serve --model {model} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait()


def bench_start(args, work: Path, registry: Registry) -> None:
    gguf = run([KAITO, "pull"]).strip().splitlines()[-1]
    reference = f"oci://{registry.host}/smollm2:q4"
    run([KAITO, "model", "package", "--model", gguf, "--push", reference])
    times: dict[str, list[float]] = {"cold": [], "warm": [], "file": []}
    for i in range(args.runs):
        cache = work / f"cache-{i}"
        times["cold"].append(time_to_ready(reference, cache))
        times["warm"].append(time_to_ready(reference, cache))
        times["file"].append(time_to_ready(gguf, work / "cache-file"))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
              flush=True)
        shutil.rmtree(cache)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"runs": args.runs, "model_bytes": os.path.getsize(gguf),
                      "median_s": med, "all_s": times}, indent=1))
    print(f"median: cold {med['cold']:.3f} s, warm {med['warm']:.3f} s, file {med['file']:.3f} s; "
          f"warm - file = {med['warm'] - med['file']:+.3f} s")


def push_random_artifact(registry: Registry, work: Path, size_mib: int) -> str:
    """A ModelPack-shaped artifact with one random layer of size_mib MiB (not a loadable model:
    the pull only streams, hashes and stores it)."""
    blob = work / "weights.bin"
    digest = hashlib.sha256()
    with open(blob, "wb") as f:
        for _ in range(size_mib):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
    layer = "sha256:" + digest.hexdigest()
    base = f"http://{registry.host}/v2/bench"

    def upload(path: Path | None, data: bytes | None, dgst: str) -> None:
        req = urllib.request.Request(f"{base}/blobs/uploads/", method="POST")
        location = urllib.request.urlopen(req).headers["Location"]
        if location.startswith("/"):
            location = f"http://{registry.host}{location}"
        sep = "&" if "?" in location else "?"
        body = open(path, "rb") if path else data
        headers = {"Content-Type": "application/octet-stream"}
        if path:
            headers["Content-Length"] = str(path.stat().st_size)
        put = urllib.request.Request(f"{location}{sep}digest={dgst}", data=body, method="PUT",
                                     headers=headers)
        urllib.request.urlopen(put)

    upload(blob, None, layer)
    config = json.dumps({"descriptor": {"name": "bench"},
                         "config": {"format": "gguf"},
                         "modelfs": {"type": "layers", "diffIds": [layer]}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    upload(None, config, config_digest)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.cncf.model.weight.v1.raw", "digest": layer,
                    "size": blob.stat().st_size,
                    "annotations": {"org.cncf.model.filepath": "weights.gguf"}}],
    }).encode()
    put = urllib.request.Request(f"{base}/manifests/v1", data=manifest, method="PUT",
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    urllib.request.urlopen(put)
    blob.unlink()
    return f"{registry.host}/bench:v1"


def push_random_checkpoint(registry: Registry, work: Path, size_mib: int, files: int) -> str:
    """A checkpoint directory of `files` safetensors shards of random bytes (one U8 tensor each,
    size_mib MiB in all) and a config.json, pushed with `kaito model package --push`."""
    ckpt = work / "checkpoint"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"architectures": ["BenchForCausalLM"], "model_type": "bench"}\n')
    per = size_mib // files
    for k in range(files):
        n = per << 20
        header = json.dumps({"weights": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
        header += b" " * (-len(header) % 8)
        with open(ckpt / f"model-{k + 1:05d}-of-{files:05d}.safetensors", "wb") as f:
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for _ in range(per):
                f.write(os.urandom(1 << 20))
    ref = f"{registry.host}/bench-ckpt:v1"
    subprocess.run([KAITO, "model", "package", "--model", str(ckpt), "--push", f"oci://{ref}"],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(ckpt)
    return ref


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_pull(args, work: Path, registry: Registry) -> None:
    if args.files > 1:
        ref = push_random_checkpoint(registry, work, args.size_mib, args.files)
        size = (args.size_mib // args.files) * args.files * (1 << 20)
    else:
        ref = push_random_artifact(registry, work, args.size_mib)
        size = args.size_mib * (1 << 20)
    repo, tag = ref.split("/", 1)[1].split(":")
    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{tag}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    layers = [l["digest"] for l in json.load(urllib.request.urlopen(req))["layers"]]
    policy = work / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    times: dict[str, list[float]] = {"kaito": [], "skopeo": [], "dd": []}
    for i in range(args.runs):
        store = work / f"store-{i}"
        times["kaito"].append(timed([KAITO, "pull", f"oci://{ref}", "--cache-dir", str(store)]))
        shutil.rmtree(store)
        out = work / f"skopeo-{i}"
        times["skopeo"].append(timed(["skopeo", "--policy", str(policy), "copy",
                                      "--src-tls-verify=false", f"docker://{ref}", f"dir:{out}"]))
        shutil.rmtree(out)
        target = work / "dd.bin"
        times["dd"].append(timed(["dd", "if=/dev/zero", f"of={target}", "bs=1M",
                                  f"count={args.size_mib}", "conv=fsync", "status=none"]))
        target.unlink()
        # The registry alone: every layer read to /dev/null at once (what the pull cannot beat
        # on a machine where the registry shares the CPUs).
        times.setdefault("registry_read", []).append(timed(["sh", "-c", " & ".join(
            f"curl -s -o /dev/null http://{registry.host}/v2/{repo}/blobs/{d}" for d in layers) + " & wait"]))
        if args.files > 1:
            # The same bytes as FILES writers at once, as kaito writes the layers.
            per = args.size_mib // args.files
            script = " & ".join(f"dd if=/dev/zero of={work}/dd{k}.bin bs=1M count={per} conv=fsync status=none"
                                for k in range(args.files)) + " & wait"
            times.setdefault("dd_parallel", []).append(timed(["sh", "-c", script]))
            for k in range(args.files):
                (work / f"dd{k}.bin").unlink()
        print(f"run {i + 1}: " + ", ".join(f"{k} {size / v[-1] / 1e6:.0f} MB/s" for k, v in times.items()),
              flush=True)
    med = {k: size / statistics.median(v) / 1e6 for k, v in times.items()}
    print(json.dumps({"runs": args.runs, "files": args.files, "bytes": size,
                      "median_MB_per_s": med, "all_s": times},
                     indent=1))
    print(f"median MB/s: kaito {med['kaito']:.0f}, skopeo {med['skopeo']:.0f}, dd {med['dd']:.0f}"
          + (f", dd x{args.files} in parallel {med['dd_parallel']:.0f}" if "dd_parallel" in med else "")
          + f", registry read to /dev/null {med['registry_read']:.0f}; "
          f"kaito / skopeo = {med['kaito'] / med['skopeo']:.2f}")


def bench_cpu(args, work: Path, registry: Registry) -> None:
    ref = push_random_checkpoint(registry, work, args.size_mib, args.files)
    fmt = "%e s wall, %U s user, %S s sys, %P cpu"
    policy = work / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    for i in range(args.runs):
        store = work / f"store-{i}"
        r = subprocess.run(["/usr/bin/time", "-f", fmt, KAITO, "pull", f"oci://{ref}", "--cache-dir", str(store)],
                           capture_output=True, text=True, check=True)
        print("kaito:", r.stderr.strip().splitlines()[-1], flush=True)
        shutil.rmtree(store)
        out = work / f"skopeo-{i}"
        r = subprocess.run(["/usr/bin/time", "-f", fmt, "skopeo", "--policy", str(policy), "copy",
                            "--src-tls-verify=false", f"docker://{ref}", f"dir:{out}"],
                           capture_output=True, text=True, check=True)
        print("skopeo:", r.stderr.strip().splitlines()[-1], flush=True)
        shutil.rmtree(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    start = sub.add_parser("start")
    start.add_argument("--runs", type=int, default=5)
    pull = sub.add_parser("pull")
    pull.add_argument("--runs", type=int, default=3)
    pull.add_argument("--size-mib", type=int, default=1024)
    pull.add_argument("--files", type=int, default=4)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--runs", type=int, default=2)
    cpu.add_argument("--size-mib", type=int, default=1024)
    cpu.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/bootstrap.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="kaito-bench-oci-", dir=os.environ.get("TMPDIR")) as d:
        work = Path(d)
        registry = Registry(work)
        try:
            {"start": bench_start, "pull": bench_pull, "cpu": bench_cpu}[args.what](args, work, registry)
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
