#!/usr/bin/env python3
"""Peer CPU latencies for BENCHMARKS.md: PyTorch eager (channels_last) and ONNX Runtime (CPU EP),
batch 1, float32, random weights, 1 and 2 threads, on the cases cnnjit is measured on.

Usage:  python scripts/bench_peers.py [--quick] [--out PATH] [--only CASE ...] [--keep-onnx DIR] [--default-malloc]
                                     [--batch 1,8,32]

Needs torch, torchvision, numpy, onnx, onnxruntime (and onnxscript for the dynamo exporter), e.g.
    pip install torch torchvision onnx onnxruntime onnxscript
Writes JSON (default scripts/peers.json): per case {"macs", "torch_t1_ms", "torch_t2_ms", "ort_t1_ms",
"ort_t2_ms"} (median milliseconds; null where a peer failed, with the reason under "errors") plus the CPU
name, versions and date.  Weights are random (seed 0); nothing is downloaded.  ONNX files go to a
temporary folder that is removed at the end.  On Linux the script re-executes itself with glibc's mmap
threshold pinned (see MALLOC_ENV below; --default-malloc to keep the default), so the peers run with warm,
reused activation memory as cnnjit does.

--batch also times each peer at the larger batch sizes given (ONNX files are exported with a dynamic batch
axis, so one export serves every size): per case "torch_t1_batch_ms", "torch_t2_batch_ms", "ort_t1_batch_ms",
"ort_t2_batch_ms", each {batch: median milliseconds for the whole batch}, for `cnnjit bench --batch`'s
images per second.

Self-contained version of shared/refs/peer_bench.py (same timing method), with the networks written
as cnnjit writes them:
  * LeNet-5 as in examples/nets/lenet5.cnn (the lecture's: tanh, average pools, softmax);
  * AlexNet as in examples/nets/alexnet.cnn (the lecture's single tower on 227x227x3, no LRN);
  * MobileNetV1 1.0 (no torchvision model): BN after every conv, no conv bias, as in
    examples/nets/mobilenet_v1.cnn and ground_truth.py;
  * the MobileNet dw-separable block at 112x112x32 -> 64: dw3x3 + BN + ReLU, pw1x1 + BN + ReLU;
  * 1x3 192->128 then 3x1 128->128 at 28x28 with same padding, no activation
    (examples/nets/inception_examples.cnn, InceptionFactorized);
  * 3x3 same conv + ReLU at 56x56x128 -> 128 and 28x28x256 -> 256;
  * ResNet-18, ResNet-50 (v1.5), VGG16, GoogLeNet, MobileNetV2 and EfficientNet-B0 from torchvision.
"macs" counts conv and dense multiply-accumulates only (the papers' figure; no BN, bias, pool or
activation), from forward hooks.
"""
import argparse
import copy
import datetime
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import OrderedDict

# Steady-state allocation for the peers. With glibc's default (dynamic) mmap threshold, a fresh process
# serves multi-megabyte activations with mmap/munmap on every call, so each forward pass pays page faults
# and zeroing (the dw-separable block under torch: ~5 ms instead of ~1.3 ms, depending on what ran
# before). cnnjit reuses one arena, and a deployed framework would run warm, so unless --default-malloc
# is given the script re-executes itself with the threshold pinned at 32 MiB (glibc's maximum) and
# trimming off: activations are then reused from the heap.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
if (__name__ == "__main__" and sys.platform.startswith("linux") and "--default-malloc" not in sys.argv
        and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items())):
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **MALLOC_ENV))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- models

def lenet5():
    """The lecture's LeNet-5 (examples/nets/lenet5.cnn): 61,706 params, 416,520 MACs."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 5)), ("tanh1", nn.Tanh()),
        ("pool1", nn.AvgPool2d(2, 2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("tanh2", nn.Tanh()),
        ("pool2", nn.AvgPool2d(2, 2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(400, 120)), ("tanh3", nn.Tanh()),
        ("fc2", nn.Linear(120, 84)), ("tanh4", nn.Tanh()),
        ("fc3", nn.Linear(84, 10)), ("softmax", nn.Softmax(dim=1)),
    ]))


def alexnet_lecture():
    """The lecture's single-tower AlexNet on 227x227x3 (examples/nets/alexnet.cnn): 62,378,344 params,
    1,135,256,096 MACs; no LRN, no dropout, softmax at the end."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1)), ("relu5", nn.ReLU()),
        ("pool3", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU()),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()),
        ("fc8", nn.Linear(4096, 1000)), ("softmax", nn.Softmax(dim=1)),
    ]))


def cbr(cin, cout, k, s=1, p=0, groups=1):
    """conv (no bias) + BN + ReLU."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=groups, bias=False)),
        ("bn", nn.BatchNorm2d(cout)), ("relu", nn.ReLU()),
    ]))


def dwsep(cin, cout, s=1):
    """MobileNetV1 depthwise-separable block: dw3x3 + BN + ReLU, pw1x1 + BN + ReLU."""
    return nn.Sequential(OrderedDict([
        ("dw", cbr(cin, cin, 3, s=s, p=1, groups=cin)),
        ("pw", cbr(cin, cout, 1)),
    ]))


def mobilenet_v1(num_classes=1000):
    """MobileNetV1 1.0 (Howard et al. 2017, Table 1; last dw stride 1): 4,231,976 params, 568.7M MACs."""
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    layers = [("conv1", cbr(3, 32, 3, s=2, p=1))]
    cin = 32
    for i, (cout, s) in enumerate(cfg, 1):
        layers.append(("block%d" % i, dwsep(cin, cout, s)))
        cin = cout
    layers += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(cin, num_classes))]
    return nn.Sequential(OrderedDict(layers))


def conv3x3_relu(c):
    return nn.Sequential(OrderedDict([("conv", nn.Conv2d(c, c, 3, padding=1)), ("relu", nn.ReLU())]))


def conv1x3_3x1():
    return nn.Sequential(OrderedDict([
        ("conv1x3", nn.Conv2d(192, 128, (1, 3), padding=(0, 1))),
        ("conv3x1", nn.Conv2d(128, 128, (3, 1), padding=(1, 0))),
    ]))


CASES = [
    # name, builder, input shape (NCHW)
    ("conv3x3_56x56x128", lambda: conv3x3_relu(128), (1, 128, 56, 56)),
    ("conv3x3_28x28x256", lambda: conv3x3_relu(256), (1, 256, 28, 28)),
    ("mbv1_dwsep_112x112x32_to64", lambda: dwsep(32, 64), (1, 32, 112, 112)),
    ("conv1x3_3x1_28x28x192_to128", conv1x3_3x1, (1, 192, 28, 28)),
    ("lenet5", lenet5, (1, 1, 32, 32)),
    ("alexnet", alexnet_lecture, (1, 3, 227, 227)),
    ("mobilenet_v1", mobilenet_v1, (1, 3, 224, 224)),
    ("resnet18", lambda: torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
    ("resnet50", lambda: torchvision.models.resnet50(weights=None), (1, 3, 224, 224)),
    ("vgg16", lambda: torchvision.models.vgg16(weights=None), (1, 3, 224, 224)),
    # torchvision's GoogLeNet (batch norm, 3x3 in the "5x5" branch) differs from the lecture's
    # examples/nets/googlenet.cnn, so cnnjit runs it imported from this script's ONNX export
    # (--keep-onnx); MobileNetV2 and EfficientNet-B0 are examples/nets' own.
    ("googlenet", lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True),
     (1, 3, 224, 224)),
    ("mobilenet_v2", lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
    ("efficientnet_b0", lambda: torchvision.models.efficientnet_b0(weights=None), (1, 3, 224, 224)),
]


def count_macs(model, shape):
    """Conv and dense multiply-accumulates of one forward pass (forward hooks)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total[0] += out.numel() * kh * kw * m.in_channels // m.groups
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.inference_mode():
        model(torch.zeros(*shape))
    for h in hooks:
        h.remove()
    return total[0]


# ---------------------------------------------------------------- timing

class Timer:
    """peer_bench.py's method: warm up (>= 3 calls and ~0.3 s, 0.1 s quick), then max(MIN_RUNS, budget
    worth, estimated from the median warm-up call) timed calls (at most MAX_RUNS); the median of per-call
    time.perf_counter() deltas."""
    MIN_RUNS = 30
    MAX_RUNS = 2000

    def __init__(self, quick):
        self.warm_s = 0.1 if quick else 0.3
        self.target_s = 0.5 if quick else 2.0
        self.min_runs = self.MIN_RUNS

    def __call__(self, fn):
        t0 = time.perf_counter()
        warm = []
        while len(warm) < 3 or (time.perf_counter() - t0 < self.warm_s and len(warm) < 50):
            a = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - a)
        # The median of the warm-up calls, not their mean: the first call (thread pool start-up,
        # allocation, ORT's first-run work) can be 100x slower than the rest.
        est = statistics.median(warm)
        runs = int(min(self.MAX_RUNS, max(self.min_runs, math.ceil(self.target_s / max(est, 1e-7)))))
        ts = []
        for _ in range(runs):
            a = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - a)
        return statistics.median(ts) * 1e3, runs

    def describe(self):
        return ("batch 1 (and --batch sizes), fp32, random weights (seed 0); time.perf_counter per call; warm-up >= 3 calls and "
                "%.1f s; then max(%d, %.1f s worth) runs (cap %d); median reported" % (
                    self.warm_s, self.min_runs, self.target_s, self.MAX_RUNS))


def export_onnx(model, x, path):
    """Exports with a dynamic batch axis (the legacy exporter's dynamic_axes, dynamo's dynamic_shapes)."""
    errs = []
    for dynamo in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
                dynamic = (dict(dynamic_shapes=({0: torch.export.Dim("n")},)) if dynamo else
                           dict(dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}))
                torch.onnx.export(model, (x,), path, dynamo=dynamo, opset_version=17,
                                  input_names=["x"], output_names=["y"], **dynamic)
            return "dynamo=%s" % dynamo
        except Exception as e:  # try the other exporter
            errs.append("dynamo=%s: %s" % (dynamo, repr(e)[:300]))
    raise RuntimeError("; ".join(errs))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter warm-up and time budget per measurement")
    ap.add_argument("--out", default=os.path.join(HERE, "peers.json"), help="JSON output (default %(default)s)")
    ap.add_argument("--only", nargs="+", metavar="CASE", help="only these cases")
    ap.add_argument("--keep-onnx", metavar="DIR",
                    help="keep each case's ONNX export in DIR (bench_cnnjit.sh imports googlenet from it)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="keep glibc's default mmap threshold (per-call page faults on large activations)")
    ap.add_argument("--batch", default="1", metavar="SIZES",
                    help="comma-separated batch sizes; those above 1 are timed too (default %(default)s)")
    args = ap.parse_args()
    try:
        batches = sorted({int(b) for b in args.batch.split(",")} - {1})
    except ValueError:
        ap.error("--batch takes comma-separated integers, e.g. 1,8,32")
    names = [c[0] for c in CASES]
    for n in args.only or []:
        if n not in names:
            ap.error("unknown case %r (cases: %s)" % (n, ", ".join(names)))
    timer = Timer(args.quick)

    torch.set_num_interop_threads(1)
    try:
        import onnx
        import onnxruntime as ort
        ort_version, onnx_version, ort_error = ort.__version__, onnx.__version__, None
    except Exception as e:
        ort, ort_version, onnx_version, ort_error = None, None, None, repr(e)
    print("torch %s | torchvision %s | onnxruntime %s | CPU %s x%s" % (
        torch.__version__, torchvision.__version__, ort_version, cpu_name(), os.cpu_count()), flush=True)

    load_start = loadavg()
    onnx_dir = tempfile.mkdtemp(prefix="cnnjit-peers-")
    cases = OrderedDict()
    try:
        for name, build, shape in CASES:
            if args.only and name not in args.only:
                continue
            torch.manual_seed(0)
            model = build().eval()
            x = torch.randn(*shape)
            rec = OrderedDict(macs=count_macs(model, shape), input_nchw=list(shape),
                              torch_t1_ms=None, torch_t2_ms=None, ort_t1_ms=None, ort_t2_ms=None)
            errors = OrderedDict()
            with torch.inference_mode():
                ref = model(x).numpy().copy()

            # PyTorch eager, channels_last (model and input).
            m = copy.deepcopy(model).to(memory_format=torch.channels_last)
            xi = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                diff = float(np.abs(m(xi).numpy() - ref).max())
            if not diff <= 1e-3 * max(1.0, float(np.abs(ref).max())):
                errors["torch_check"] = "max |channels_last - NCHW| = %g" % diff
            for nt in (1, 2):
                torch.set_num_threads(nt)
                with torch.inference_mode():
                    ms, runs = timer(lambda: m(xi))
                rec["torch_t%d_ms" % nt] = round(ms, 4)
                print("%-30s torch t%d  %10.3f ms  (%4d runs)" % (name, nt, ms, runs), flush=True)
                for b in batches:
                    xb = torch.randn(b, *shape[1:]).contiguous(memory_format=torch.channels_last)
                    with torch.inference_mode():
                        ms, runs = timer(lambda: m(xb))
                    rec.setdefault("torch_t%d_batch_ms" % nt, OrderedDict())[b] = round(ms, 4)
                    print("%-30s torch t%d  batch %3d %10.3f ms  %8.1f images/s  (%4d runs)" % (
                        name, nt, b, ms, b * 1e3 / ms, runs), flush=True)
            del m, xi
            gc.collect()

            # ONNX Runtime, CPU execution provider.
            if ort is None:
                errors["ort"] = "onnxruntime unavailable: " + ort_error
            else:
                path = os.path.join(onnx_dir, name + ".onnx")
                try:
                    rec["onnx_export"] = export_onnx(model, x, path)
                    for nt in (1, 2):
                        so = ort.SessionOptions()
                        so.intra_op_num_threads = nt
                        so.inter_op_num_threads = 1
                        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
                        feed = {sess.get_inputs()[0].name: x.numpy()}
                        diff = float(np.abs(sess.run(None, feed)[0] - ref).max())
                        if not diff <= 1e-3 * max(1.0, float(np.abs(ref).max())):
                            errors["ort_t%d_check" % nt] = "max |ort - torch| = %g" % diff
                        ms, runs = timer(lambda: sess.run(None, feed))
                        rec["ort_t%d_ms" % nt] = round(ms, 4)
                        print("%-30s ORT   t%d  %10.3f ms  (%4d runs)" % (name, nt, ms, runs), flush=True)
                        for b in batches:
                            fb = {sess.get_inputs()[0].name: torch.randn(b, *shape[1:]).numpy()}
                            ms, runs = timer(lambda: sess.run(None, fb))
                            rec.setdefault("ort_t%d_batch_ms" % nt, OrderedDict())[b] = round(ms, 4)
                            print("%-30s ORT   t%d  batch %3d %10.3f ms  %8.1f images/s  (%4d runs)" % (
                                name, nt, b, ms, b * 1e3 / ms, runs), flush=True)
                        del sess
                        gc.collect()
                except Exception as e:
                    errors["ort"] = repr(e)[:1000]
                    print(name, "ORT failed:", repr(e)[:300], flush=True)
                for p in (path, path + ".data"):
                    if os.path.exists(p):
                        if args.keep_onnx:
                            os.makedirs(args.keep_onnx, exist_ok=True)
                            shutil.move(p, os.path.join(args.keep_onnx, os.path.basename(p)))
                        else:
                            os.remove(p)
            if errors:
                rec["errors"] = errors
            cases[name] = rec
            del model
            gc.collect()
    finally:
        shutil.rmtree(onnx_dir, ignore_errors=True)

    out = OrderedDict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        cpu=cpu_name(),
        nproc=os.cpu_count(),
        # 1-, 5- and 15-minute load averages before and after: anything well above 0 means other work
        # shared the cores and the figures (2-thread ones especially) are pessimistic.
        loadavg_start=load_start,
        loadavg_end=loadavg(),
        versions=OrderedDict(python=sys.version.split()[0], torch=torch.__version__,
                             torchvision=torchvision.__version__, numpy=np.__version__,
                             onnx=onnx_version, onnxruntime=ort_version),
        method=OrderedDict(
            quick=args.quick,
            timing=timer.describe(),
            torch="eager, torch.inference_mode(), model and input in channels_last, "
                  "set_num_threads(1|2), set_num_interop_threads(1)",
            ort="torch.onnx.export opset 17, CPUExecutionProvider, ORT_ENABLE_ALL, intra_op_num_threads 1|2, "
                "inter_op 1, sequential",
            macs="conv + dense multiply-accumulates (no BN, bias, pool or activation)",
            allocator=("glibc defaults" if args.default_malloc or not sys.platform.startswith("linux") else
                       "glibc, " + ", ".join("%s=%s" % kv for kv in MALLOC_ENV.items())),
        ),
        cases=cases,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")

    print("\n| case | MACs | torch t1 | torch t2 | ORT t1 | ORT t2 |\n|---|---:|---:|---:|---:|---:|")
    fmt = lambda v: "%.3f ms" % v if v is not None else "n/a"
    for name, r in cases.items():
        print("| %s | %.1fM | %s | %s | %s | %s |" % (name, r["macs"] / 1e6, fmt(r["torch_t1_ms"]),
              fmt(r["torch_t2_ms"]), fmt(r["ort_t1_ms"]), fmt(r["ort_t2_ms"])))
    print("\nwrote", args.out)


if __name__ == "__main__":
    main()
