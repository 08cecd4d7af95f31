#!/usr/bin/env python3
"""Bad-input and fault campaign against the built vlsm command (issue #19's categories).

Each case builds a bad model folder, adapter, image, annotation file, command-line value, hostile
.pth or fault, runs vlsm on it as a user would, and classifies the outcome:

  bad   exit code other than 0/1/2 (3 = unexpected exception, 134 = abort, 139 = crash, 137 = killed),
        a stack trace or native frames on stderr, success where a refusal was due, more than
        10,000 characters on stderr, a time-out, or a peak RSS above the case's limit;
  weak  refused, but the message does not name what the case says it must (the file, field or
        value at fault) or runs to more than 4 lines;
  ok    otherwise.

Usage: python3 tools/hostile_campaign.py [--vlsm PATH/vlsm.dll] [--only CATEGORY] [--json FILE]
Needs ../shared beside the checkout (the tiny parity models) and a built vlsm (./vlsm --help builds it).
Needs /usr/bin/time (Debian's time package) for the peak RSS figures. Runs as root or not; the disk-full case mounts a 2 MB tmpfs when run as root and is left out otherwise.
Nothing here is a test of the suite: it is a tool to re-run the campaign and report its counts.
"""
import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
TINY = os.path.join(SHARED, "parity", "clipseg-tiny")
CRIS = os.path.join(SHARED, "parity", "cris-tiny")

STACK_MARKERS = ["\n   at ", "Unhandled exception", "terminate called", "Exception raised from", "frame #", "Segmentation fault", "core dumped"]


# ---------------------------------------------------------------- file builders

def write(path, data, mode="wb"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def write_safetensors(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    write(path, struct.pack("<Q", len(h)) + h + data)


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def edit_config(folder, edit):
    p = os.path.join(folder, "config.json")
    cfg = json.load(open(p))
    edit(cfg)
    write(p, json.dumps(cfg, indent=1), "w")


def png(width, height, pixels=None, color_type=2, bit_depth=8):
    """A PNG; pixels are raw scanline bytes without filter bytes (zeros by default)."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    row = width * channels * bit_depth // 8
    if pixels is None:
        raw = (b"\x00" + b"\x00" * row) * height
    else:
        raw = b"".join(b"\x00" + pixels[i * row:(i + 1) * row] for i in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_header_only(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pth(path, pickle_bytes, extra=None, deflate=True, duplicate_pkl=None):
    """A torch.save-style zip: archive/data.pkl (+ extra entries)."""
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        if duplicate_pkl is not None:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                z.writestr("archive/data.pkl", duplicate_pkl)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
        z.writestr("archive/version", "3\n")


PROTO = b"\x80\x02"
EMPTY_DICT = b"}"
STOP = b"."


def pickle_state_dict_ok():
    # {} : an empty state dict
    return PROTO + EMPTY_DICT + STOP


# ---------------------------------------------------------------- the runner

class Campaign:
    def __init__(self, vlsm, root):
        self.vlsm = vlsm
        self.root = root
        self.results = []

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def run(self, category, name, args, expect="refuse", must_name=(), rss_limit_mb=None, timeout=300, cwd=None, check=None, forbid=()):
        out_path, err_path = self.path(f".out-{len(self.results)}"), self.path(f".err-{len(self.results)}")
        started = time.time()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            # /usr/bin/time measures the peak RSS: the kernel carries a process's high-water mark across
            # exec, so wait4's figure for a child forked from this (large) Python process would be Python's.
            rss_path = self.path(f".rss-{len(self.results)}")
            p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_path, "dotnet", self.vlsm] + [str(a) for a in args],
                                 stdout=out, stderr=err, cwd=cwd or self.root, start_new_session=True)
            timed_out = False
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.time() > deadline:
                    os.killpg(p.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(p.pid, 0)
                    timed_out = True
                    break
                time.sleep(0.05)
        code = os.waitstatus_to_exitcode(status)
        stdout = open(out_path, "rb").read().decode("utf-8", "replace")
        stderr = open(err_path, "rb").read().decode("utf-8", "replace")
        try:
            rss_mb = int(open(rss_path).read().strip().splitlines()[-1]) / 1024
        except (OSError, ValueError, IndexError):
            rss_mb = usage.ru_maxrss / 1024
        reasons = []
        if timed_out:
            reasons.append(f"timed out after {timeout} s")
        if code not in (0, 1, 2) and not timed_out:
            reasons.append(f"exit code {code}")
        for marker in STACK_MARKERS:
            if marker in stderr:
                reasons.append(f"stderr has {marker.strip()!r}")
                break
        if len(stderr) > 10000:
            reasons.append(f"{len(stderr)} characters on stderr")
        if expect == "refuse" and code == 0:
            reasons.append("exit 0 where a refusal was due")
        if expect == "accept" and code != 0 and not reasons:
            reasons.append(f"refused a valid input (exit {code})")
        if rss_limit_mb is not None and rss_mb > rss_limit_mb:
            reasons.append(f"peak RSS {rss_mb:.0f} MB > {rss_limit_mb} MB")
        if check is not None:
            problem = check(code, stdout, stderr)
            if problem:
                reasons.append(problem)
        verdict = "bad" if reasons else "ok"
        if verdict == "ok" and expect == "refuse":
            text = stderr + stdout
            missing = [m for m in must_name if m.lower() not in text.lower()]
            lines = [l for l in stderr.strip().splitlines() if l.strip()]
            wrong = [f for f in forbid if f.lower() in text.lower()]
            if missing:
                verdict, reasons = "weak", [f"message does not name {missing}"]
            elif wrong:
                verdict, reasons = "weak", [f"message says {wrong}"]
            elif len(lines) > 4:
                verdict, reasons = "weak", [f"{len(lines)} lines on stderr"]
        first = next((l for l in (stderr.strip() or stdout.strip()).splitlines() if l.strip()), "")
        self.results.append(dict(category=category, case=name, verdict=verdict, exit=code, seconds=round(time.time() - started, 1),
                                 rss_mb=round(rss_mb), reasons=reasons, message=first[:200]))
        mark = {"ok": " ok ", "weak": "WEAK", "bad": "BAD "}[verdict]
        print(f"[{mark}] {category:12} {name:55} exit {code:3}  {rss_mb:6.0f} MB  {'; '.join(reasons) or first[:90]}", flush=True)
        return code, stdout, stderr


# ---------------------------------------------------------------- the cases

def model_folders(c):
    cat = "model"

    def predict(model, out):
        return ["predict", "--model", model, "--prompt", "x", "--out", c.path(out), c.path("img", "a.png")]

    m = copy_model(TINY, c.path("m-noconfig")); os.remove(os.path.join(m, "config.json"))
    c.run(cat, "no config.json", ["info", "--model", m], must_name=["config.json"])
    m = copy_model(TINY, c.path("m-badjson")); write(os.path.join(m, "config.json"), b"{ not json")
    c.run(cat, "config.json not JSON", ["info", "--model", m], must_name=["config.json"])
    m = copy_model(TINY, c.path("m-type")); edit_config(m, lambda k: k.__setitem__("model_type", "bogus"))
    c.run(cat, "unknown model_type", ["info", "--model", m], must_name=["bogus"])
    m = copy_model(TINY, c.path("m-novision")); edit_config(m, lambda k: k.pop("vision_config"))
    c.run(cat, "no vision_config", ["info", "--model", m], must_name=["config.json"])
    m = copy_model(TINY, c.path("m-huge")); edit_config(m, lambda k: k["vision_config"].__setitem__("intermediate_size", 2000000000))
    c.run(cat, "intermediate_size 2e9 (info)", ["info", "--model", m], must_name=["intermediate_size"], rss_limit_mb=1500)
    c.run(cat, "intermediate_size 2e9 (predict)", ["predict", "--model", m, "--prompt", "x", "--out", c.path("o-huge"), c.path("img", "a.png")],
          must_name=["intermediate_size"], rss_limit_mb=1500)
    m = copy_model(TINY, c.path("m-neg")); edit_config(m, lambda k: k["vision_config"].__setitem__("hidden_size", -48))
    c.run(cat, "negative hidden_size", ["info", "--model", m], must_name=["hidden_size"])
    m = copy_model(TINY, c.path("m-shape")); edit_config(m, lambda k: k["vision_config"].__setitem__("hidden_size", 64))
    c.run(cat, "hidden_size disagrees with weights", predict(m, "o-shape"), must_name=["hidden_size"])
    m = copy_model(TINY, c.path("m-noweights")); os.remove(os.path.join(m, "model.safetensors"))
    c.run(cat, "no model.safetensors", predict(m, "o-now"), must_name=["model.safetensors"])
    m = copy_model(TINY, c.path("m-trunc"))
    w = os.path.join(m, "model.safetensors"); data = open(w, "rb").read(); write(w, data[: len(data) // 2])
    c.run(cat, "truncated model.safetensors", ["predict", "--model", m, "--prompt", "x", "--out", c.path("o-trunc"), c.path("img", "a.png")], must_name=["model.safetensors"])
    m = copy_model(TINY, c.path("m-hlen")); write(os.path.join(m, "model.safetensors"), struct.pack("<Q", 1 << 60) + b"{}")
    c.run(cat, "safetensors header length 2^60", predict(m, "o-hlen"), must_name=["model.safetensors"])
    m = copy_model(TINY, c.path("m-hjson")); write(os.path.join(m, "model.safetensors"), struct.pack("<Q", 8) + b"not json")
    c.run(cat, "safetensors header not JSON", predict(m, "o-hjson"), must_name=["model.safetensors"])
    m = copy_model(TINY, c.path("m-nan"))
    header, data = read_safetensors(os.path.join(m, "model.safetensors"))
    name, entry = next((k, v) for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    b, e = entry["data_offsets"]
    data = data[:b] + struct.pack("<f", float("nan")) * ((e - b) // 4) + data[e:]
    write_safetensors(os.path.join(m, "model.safetensors"), header, data)
    c.run(cat, "NaN weights", ["predict", "--model", m, "--prompt", "x", "--out", c.path("o-nan"), c.path("img", "a.png")], must_name=[name])
    m = copy_model(TINY, c.path("m-i32"))
    header, data = read_safetensors(os.path.join(m, "model.safetensors"))
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    header[name]["dtype"] = "I32"
    write_safetensors(os.path.join(m, "model.safetensors"), header, data)
    c.run(cat, "I32 declared for a float weight", predict(m, "o-i32"), must_name=[name])
    m = copy_model(TINY, c.path("m-novocab")); os.remove(os.path.join(m, "vocab.json"))
    c.run(cat, "no vocab.json", ["tokenize", "--model", m, "a polyp"], must_name=["vocab.json"])
    m = copy_model(TINY, c.path("m-vocab"))
    vocab = json.load(open(os.path.join(m, "vocab.json"))); vocab["polyp</w>"] = 1000000000
    write(os.path.join(m, "vocab.json"), json.dumps(vocab), "w")
    c.run(cat, "vocab.json id 1e9", ["predict", "--model", m, "--prompt", "polyp", "--out", c.path("o-vocab"), c.path("img", "a.png")], must_name=["vocab.json"])
    m = copy_model(TINY, c.path("m-merges")); write(os.path.join(m, "merges.txt"), b"\xff\xfe garbage\x00\n")
    c.run(cat, "merges.txt garbage", ["tokenize", "--model", m, "a polyp"], must_name=["merges.txt"])
    c.run(cat, "a file as --model", ["info", "--model", os.path.join(TINY, "config.json")], must_name=["config.json"])
    c.run(cat, "missing --model folder", ["info", "--model", c.path("nope")], must_name=["nope"])
    m = copy_model(CRIS, c.path("m-cris-img")); edit_config(m, lambda k: k["cris"].__setitem__("img_size", 100000))
    c.run(cat, "CRIS img_size 100000", ["predict", "--model", m, "--prompt", "x", "--out", c.path("o-cris"), c.path("img", "a.png")], must_name=["img_size"])


def adapters(c):
    cat = "adapter"
    img = c.path("img", "a.png")
    base = ["predict", "--model", TINY, "--prompt", "x", "--out", c.path("o-ad"), img, "--adapter"]
    c.run(cat, "missing adapter", base + [c.path("none.safetensors")], must_name=["none.safetensors"])
    c.run(cat, "a folder as --adapter", base + [c.path("img")], must_name=["img"])
    write(c.path("trunc.safetensors"), struct.pack("<Q", 100) + b'{"a":')
    c.run(cat, "truncated adapter", base + [c.path("trunc.safetensors")], must_name=["trunc.safetensors"])
    write_safetensors(c.path("bogus.safetensors"), {"__metadata__": {"vlsm_kind": "bogus", "kind": "bogus"}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 4)
    c.run(cat, "adapter with unknown keys/kind", base + [c.path("bogus.safetensors")], must_name=["bogus.safetensors"])
    write(c.path("empty.safetensors"), b"")
    c.run(cat, "empty adapter file", base + [c.path("empty.safetensors")], must_name=["empty.safetensors"])


def images(c):
    cat = "image"
    base = lambda out: ["predict", "--model", TINY, "--prompt", "x", "--out", c.path(out)]
    write(c.path("bad", "text.png"), b"this is not an image\n")
    c.run(cat, "text file named .png", base("o1") + [c.path("bad", "text.png")], must_name=["text.png"])
    write(c.path("bad", "zero.png"), png_header_only(0, 0))
    c.run(cat, "PNG header 0x0", base("o2") + [c.path("bad", "zero.png")], must_name=["zero.png"], forbid=["truncated"])
    write(c.path("bad", "wide.png"), png_header_only(1 << 31, 1))
    c.run(cat, "PNG width 2^31", base("o3") + [c.path("bad", "wide.png")], must_name=["wide.png", "2147483648"], forbid=["truncated"])
    full = png(64, 64)
    write(c.path("bad", "trunc.png"), full[: len(full) // 2])
    c.run(cat, "truncated PNG", base("o4") + [c.path("bad", "trunc.png")], must_name=["trunc.png"])
    write(c.path("bad", "empty.png"), b"")
    c.run(cat, "empty file", base("o5") + [c.path("bad", "empty.png")], must_name=["empty.png"])
    os.makedirs(c.path("emptydir"), exist_ok=True)
    c.run(cat, "empty input folder", base("o6") + [c.path("emptydir")], must_name=["emptydir"])
    write(c.path("one", "px.png"), png(1, 1))
    c.run(cat, "1x1 image", base("o7") + [c.path("one", "px.png")], expect="accept")
    c.run(cat, "unknown flag on predict", base("o8") + ["--foo", c.path("img", "a.png")], must_name=["--foo"])
    for value in ["NaN", "2", "-1", "abc"]:
        c.run(cat, f"--threshold {value}", base("o9") + ["--threshold", value, c.path("img", "a.png")], must_name=["--threshold"])
    for value in ["0", "-1", "abc"]:
        c.run(cat, f"--batch-size {value}", base("o10") + ["--batch-size", value, c.path("img", "a.png")], must_name=["--batch-size"])
    write(c.path("afile"), b"x")
    c.run(cat, "--out is a file", ["predict", "--model", TINY, "--prompt", "x", "--out", c.path("afile"), c.path("img", "a.png")], must_name=["afile"])
    # --out inside the input folder, twice: the second run must not read its own outputs.
    os.makedirs(c.path("selfin"), exist_ok=True)
    write(c.path("selfin", "a.png"), png(32, 32))
    args = ["predict", "--model", TINY, "--prompt", "x", "--out", c.path("selfin"), c.path("selfin")]
    c.run(cat, "--out = input folder (1st)", args, expect="accept")
    c.run(cat, "--out = input folder (2nd)", args, expect="accept",
          check=lambda code, out, err: None if not any(n.endswith(".mask.mask.png") or n.endswith(".overlay.mask.png") for n in os.listdir(c.path("selfin")))
          else "read its own outputs")
    big = png(12000, 12000, color_type=2)
    write(c.path("big", "big.png"), big)
    c.run(cat, "12000x12000 image, predict", ["predict", "--model", TINY, "--prompt", "x", "--out", c.path("o-big"), c.path("big", "big.png")],
          expect="accept", rss_limit_mb=3000, timeout=600)


def annotations(c):
    cat = "annotations"
    data = c.path("data")
    c.run(cat, "(setup) synth", ["synth", "--out", data, "--n", "12", "--seed", "1", "--size", "32"], expect="accept")

    def variant(name, edit):
        d = c.path("data-" + name)
        shutil.copytree(data, d)
        edit(d)
        return d

    def edit_json(d, split, fn):
        p = os.path.join(d, "anns", f"{split}.json")
        records = json.load(open(p))
        fn(records)
        write(p, json.dumps(records), "w")

    d = variant("noanns", lambda d: shutil.rmtree(os.path.join(d, "anns")))
    c.run(cat, "no anns/ (data check)", ["data", "check", "--data", d], must_name=["anns"])
    d = variant("badjson", lambda d: write(os.path.join(d, "anns", "train.json"), b"[{"))
    c.run(cat, "train.json not JSON", ["data", "check", "--data", d], must_name=["train.json"])
    d = variant("nofield", lambda d: edit_json(d, "train", lambda r: r[0].pop("mask_name")))
    c.run(cat, "record without mask_name", ["data", "check", "--data", d], must_name=["train.json", "mask_name"])
    d = variant("dotdot", lambda d: edit_json(d, "train", lambda r: r[0].__setitem__("img_name", "../../../etc/passwd")))
    c.run(cat, "img_name ../../../etc/passwd", ["data", "check", "--data", d], must_name=["../../../etc/passwd"])
    d = variant("abs", lambda d: edit_json(d, "train", lambda r: r[0].__setitem__("img_name", "/etc/passwd")))
    c.run(cat, "img_name absolute", ["data", "check", "--data", d], must_name=["/etc/passwd"])

    def symlink(d):
        records = json.load(open(os.path.join(d, "anns", "train.json")))
        target = os.path.join(d, "images", records[0]["img_name"])
        os.remove(target)
        os.symlink("/etc/passwd", target)
    d = variant("symlink", symlink)
    c.run(cat, "image symlinked to /etc/passwd", ["data", "check", "--data", d], must_name=["symlink"])
    d = variant("emptysplit", lambda d: write(os.path.join(d, "anns", "val.json"), b"[]"))
    c.run(cat, "empty val split (data check)", ["data", "check", "--data", d], expect="accept",
          check=lambda code, out, err: None if "val" in (out + err).lower() and ("empty" in (out + err).lower() or "0 records" in (out + err).lower()) else "no warning about the empty split")

    def mismatch(d):
        records = json.load(open(os.path.join(d, "anns", "train.json")))
        write(os.path.join(d, "masks", records[0]["mask_name"]), png(17, 17, color_type=0))
    d = variant("size", mismatch)
    c.run(cat, "mask size differs from image", ["data", "check", "--data", d], must_name=["17"])
    c.run(cat, "prompt key p9x missing", ["data", "check", "--data", data, "--prompt", "p9x"], must_name=["p9x"])


def command_line(c):
    cat = "cli"
    data = c.path("data")
    train = ["train", "--model", TINY, "--data", data, "--mode", "shallow"]
    for flag, value in [("--epochs", "abc"), ("--epochs", "-1"), ("--epochs", "0"), ("--lr", "NaN"), ("--lr", "-1"), ("--batch-size", "0")]:
        c.run(cat, f"train {flag} {value}", train + [flag, value, "--out", c.path("r-" + flag.strip("-") + value)], must_name=[flag])
    c.run(cat, "eval --threshold NaN", ["eval", "--model", TINY, "--data", data, "--threshold", "NaN"], must_name=["--threshold"])
    ref = os.path.join(TINY, "reference.safetensors")
    c.run(cat, "verify --tolerance NaN", ["verify", "--model", TINY, "--reference", ref, "--tolerance", "NaN"], must_name=["--tolerance"])
    c.run(cat, "verify --tolerance -1", ["verify", "--model", TINY, "--reference", ref, "--tolerance", "-1"], must_name=["--tolerance"])
    c.run(cat, "misspelt command", ["trian"], must_name=["train"])
    c.run(cat, "missing required option", ["predict", c.path("img", "a.png")], must_name=["--out"])
    cfg = c.path("bad-config.yaml")
    for key, value in [("beta1", "1.5"), ("eps", "0"), ("plateau_factor", "5"), ("feature_cache_memory_mb", "-1"), ("early_stopping_patience", "-3")]:
        write(cfg, f"model: {TINY}\ndata: [{data}]\nmode: shallow\nmax_epochs: 1\n{key}: {value}\n".encode())
        c.run(cat, f"config.yaml {key}: {value}", ["train", "--config", cfg, "--out", c.path("r-cfg-" + key)], must_name=[key])


def hostile_pth(c):
    cat = "pth"
    cfg = os.path.join(CRIS, "config.json")

    def convert(name, path, must=(), rss=300):
        c.run(cat, name, ["convert", "cris", "--checkpoint", path, "--config", cfg, "--out", c.path("o-" + os.path.basename(path))],
              must_name=must, rss_limit_mb=rss)

    pth(c.path("pth", "nones.pth"), PROTO + b"N" * 100_000_000 + STOP)
    convert("100M NONE opcodes (102 KB file)", c.path("pth", "nones.pth"))
    big = b"a" * 100_000_000
    pth(c.path("pth", "bigstr.pth"), PROTO + b"X" + struct.pack("<I", len(big)) + big + STOP)
    convert("100 MB string", c.path("pth", "bigstr.pth"))
    pth(c.path("pth", "declared.pth"), PROTO + b"X" + struct.pack("<I", 0xFFFFFFF0) + b"abc" + STOP)
    convert("string declaring 4 GB", c.path("pth", "declared.pth"))
    pth(c.path("pth", "binbytes8.pth"), b"\x80\x04" + b"\x8e" + struct.pack("<Q", 1 << 62) + b"abc" + STOP)
    convert("BINBYTES8 declaring 2^62", c.path("pth", "binbytes8.pth"))
    pth(c.path("pth", "nested.pth"), PROTO + b"]" * 10_000_000 + STOP)
    convert("10M nested empty lists", c.path("pth", "nested.pth"))
    pth(c.path("pth", "marks.pth"), PROTO + b"(" * 10_000_000 + STOP)
    convert("10M MARKs", c.path("pth", "marks.pth"))
    pth(c.path("pth", "memo.pth"), PROTO + b"}" + b"r" + struct.pack("<I", 0xFFFFFFFF) + STOP)
    convert("LONG_BINPUT 2^32-1", c.path("pth", "memo.pth"))
    pth(c.path("pth", "memo-many.pth"), PROTO + b"}" + b"".join(b"r" + struct.pack("<I", i) for i in range(5_000_000)) + STOP)
    convert("5M memo puts", c.path("pth", "memo-many.pth"))
    marker = c.path("pwned")
    evil = PROTO + b"cos\nsystem\n(X" + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode() + b"tR" + STOP
    pth(c.path("pth", "evil.pth"), evil)
    c.run(cat, "GLOBAL os.system REDUCE", ["convert", "cris", "--checkpoint", c.path("pth", "evil.pth"), "--config", cfg, "--out", c.path("o-evil")],
          must_name=["os", "system"], check=lambda code, out, err: "the pickle ran code" if os.path.exists(marker) else None)
    pth(c.path("pth", "dup.pth"), pickle_state_dict_ok(), duplicate_pkl=PROTO + b"N" + STOP)
    convert("duplicate archive/data.pkl", c.path("pth", "dup.pth"), must=["data.pkl"])
    write(c.path("pth", "notzip.pth"), b"PK\x03\x04garbage" * 10)
    convert("not a zip", c.path("pth", "notzip.pth"), must=["notzip.pth"])
    pth(c.path("pth", "ok.pth"), pickle_state_dict_ok())
    data = open(c.path("pth", "ok.pth"), "rb").read()
    write(c.path("pth", "trunc.pth"), data[: len(data) // 2])
    convert("truncated zip", c.path("pth", "trunc.pth"), must=["trunc.pth"])
    convert("empty state dict", c.path("pth", "ok.pth"))
    malicious = os.path.join(CRIS, "malicious.pth")
    if os.path.exists(malicious):
        convert("fixture malicious.pth", malicious)
    write(c.path("pth", "bomb.pth"), b"")
    with zipfile.ZipFile(c.path("pth", "bomb.pth"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pickle_state_dict_ok())
        z.writestr("archive/data/0", b"\x00" * 400_000_000)
    convert("zip entry of 400 MB zeros (bomb)", c.path("pth", "bomb.pth"))


def faults(c):
    cat = "faults"
    data = c.path("data")
    write(c.path("plainfile"), b"x")
    c.run(cat, "train --out under a file", ["train", "--model", TINY, "--data", data, "--mode", "shallow", "--epochs", "1", "--out", c.path("plainfile", "run")], must_name=["plainfile"],
          forbid=["Could not find a part of the path"])
    c.run(cat, "eval --out under a file", ["eval", "--model", TINY, "--data", data, "--out", c.path("plainfile", "ev")], must_name=["plainfile"],
          forbid=["Could not find a part of the path"])
    if os.geteuid() == 0:
        mnt = c.path("tiny-disk")
        os.makedirs(mnt, exist_ok=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]).returncode == 0:
            try:
                # Fill the disk to its last 48 KB: a checkpoint of even the tiny model does not fit.
                st = os.statvfs(mnt)
                write(os.path.join(mnt, "filler"), b"\0" * (st.f_bavail * st.f_frsize - 48 * 1024))
                c.run(cat, "train on a full disk (48 KB free)", ["train", "--model", TINY, "--data", data, "--mode", "dense", "--epochs", "1", "--out", os.path.join(mnt, "run")],
                      must_name=["space"])
            finally:
                subprocess.run(["umount", mnt])
    # Two trains on one --out: the second must refuse while the first holds it.
    out = c.path("r-twice")
    first = subprocess.Popen(["dotnet", c.vlsm, "train", "--model", TINY, "--data", data, "--mode", "shallow", "--epochs", "3", "--seed", "1", "--out", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(os.path.join(out, "config.yaml")):
        time.sleep(0.2)
    c.run(cat, "second train on a run folder in use", ["train", "--model", TINY, "--data", data, "--mode", "shallow", "--epochs", "2", "--seed", "7", "--out", out],
          must_name=[str(first.pid)])
    first.wait()
    # SIGKILL mid-run, then resume: the run completes.
    out = c.path("r-kill")
    p = subprocess.Popen(["dotnet", c.vlsm, "train", "--model", TINY, "--data", data, "--mode", "shallow", "--epochs", "3", "--out", out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(8)
    p.kill(); p.wait()
    c.run(cat, "resume after SIGKILL", ["train", "--resume", out], expect="accept")
    c.run(cat, "resume from another directory", ["train", "--resume", out, "--epochs", "4"], expect="accept", cwd="/")


CATEGORIES = {"model": model_folders, "adapter": adapters, "image": images, "annotations": annotations,
              "cli": command_line, "pth": hostile_pth, "faults": faults}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlsm", default=os.path.join(REPO, "src", "Vlsm.Cli", "bin", "Release", "net10.0", "vlsm.dll"))
    ap.add_argument("--only", action="append", choices=sorted(CATEGORIES))
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    if not os.path.exists(a.vlsm):
        sys.exit(f"{a.vlsm}: not built; run ./vlsm --help first")
    root = tempfile.mkdtemp(prefix="vlsm-campaign-")
    c = Campaign(os.path.abspath(a.vlsm), root)
    try:
        write(c.path("img", "a.png"), png(48, 40))
        # Annotations set up the dataset the later categories use.
        order = ["annotations", "model", "adapter", "image", "cli", "pth", "faults"]
        for name in order:
            if a.only and name not in a.only and not (name == "annotations" and any(x in a.only for x in ("cli", "faults"))):
                continue
            CATEGORIES[name](c)
    finally:
        counts = {v: sum(r["verdict"] == v for r in c.results) for v in ("ok", "weak", "bad")}
        print(f"\n{len(c.results)} cases: {counts['ok']} ok, {counts['weak']} weak, {counts['bad']} bad")
        by_cat = {}
        for r in c.results:
            by_cat.setdefault(r["category"], {"ok": 0, "weak": 0, "bad": 0})[r["verdict"]] += 1
        for cat, n in by_cat.items():
            print(f"  {cat:12} {n['ok']:3} ok {n['weak']:3} weak {n['bad']:3} bad")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"counts": counts, "by_category": by_cat, "cases": c.results}, f, indent=1)
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"scratch kept in {root}")


if __name__ == "__main__":
    main()
