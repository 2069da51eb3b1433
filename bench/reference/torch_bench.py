"""PyTorch reference for `npm run bench`: the same cases as bench/tfjs-worker.ts, on the CPU, or
on a CUDA GPU with PNEUMOGAN_BENCH_TORCH_DEVICE=cuda (the GPU bench, gpu/README.md).

    python torch_bench.py '<cases JSON>'        model cases (bench/cases.ts), one result line each
    python torch_bench.py --ingest '<JSON>'     Pillow ingestion: decode, grayscale, resize, PNG
    python torch_bench.py --probe-threads       how many threads to give both native engines now

Prints `@@bench {json}` lines on stdout, as the tfjs worker does. The architectures are the
project's (lib/models/dcgan.ts, lib/models/backbones.ts) in PyTorch's NCHW layout: at width 1
the backbones ARE torchvision's (alexnet, googlenet(aux_logits=False, init_weights=True),
squeezenet1_1, resnet18, 2-class heads); at other widths the width-scaled copies below are used,
and a self-check builds those copies at width 1 and requires torchvision's exact parameter
shapes. Each training step does what the tfjs step does: uint8 -> normalised float input,
forward, loss, backward, Adam; the DCGAN step is the D update then the G update with the
non-saturating loss, without weight gradients for the network not being updated.
"""
import io
import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

PREFIX = "@@bench "
# cuda: models and batches live on the GPU; every step ends in .item()/.tolist(), which waits
# for the GPU, so the step times are GPU times. fp32 with cuDNN's autotuner, as a user would run.
DEVICE = torch.device(os.environ.get("PNEUMOGAN_BENCH_TORCH_DEVICE", "cpu"))
if DEVICE.type == "cuda":
    torch.backends.cudnn.benchmark = True
MEAN = torch.tensor([0.485, 0.456, 0.406], device=DEVICE).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], device=DEVICE).view(1, 3, 1, 1)


def emit(event):
    sys.stdout.write(PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def params(*models):
    return sum(p.numel() for m in models for p in m.parameters())


# --------------------------------------------------------------------------------------------
# DCGAN (lib/models/dcgan.ts). 32 px: the second-to-last G layer and D's second conv are 4x4
# stride 1 'same' (TF pads 1 before, 2 after), done here as an asymmetric pad / crop.


class Crop(nn.Module):
    def forward(self, x):  # ConvT(4, 1, padding=1) makes n+1; TF 'same' keeps n
        return x[:, :, :-1, :-1]


def generator(image_size, nz, ngf, nc=1):
    strides = [1, 2, 2, 2, 2] if image_size == 64 else [1, 2, 2, 1, 2]
    widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf, nc]
    layers = []
    for i in range(5):
        s = strides[i]
        pad = 0 if i == 0 else 1
        layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, s, pad, bias=False))
        if i > 0 and s == 1:
            layers.append(Crop())
        if i < 4:
            layers += [nn.BatchNorm2d(widths[i + 1]), nn.ReLU(True)]
    layers.append(nn.Tanh())
    return nn.Sequential(nn.Unflatten(1, (nz, 1, 1)), *layers)


def discriminator(image_size, ndf, nc=1):
    strides = [2, 2, 2, 2] if image_size == 64 else [2, 1, 2, 2]
    widths = [nc, ndf, ndf * 2, ndf * 4, ndf * 8]
    layers = []
    for i in range(4):
        if strides[i] == 1:
            layers += [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(widths[i], widths[i + 1], 4, 1, 0, bias=False)]
        else:
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1, bias=False))
        if i > 0:
            layers.append(nn.BatchNorm2d(widths[i + 1]))
        layers.append(nn.LeakyReLU(0.2, True))
    layers += [nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Flatten()]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------
# Width-scaled torchvision architectures (lib/models/backbones.ts: every channel count and the
# hidden FC widths become max(1, round(c * w))).


def scaler(w):
    # JS Math.round rounds halves up; Python's round() would round them to even.
    return lambda c: max(1, int(c * w + 0.5))


def alexnet(w, num_classes, dropout):
    ch = scaler(w)
    return nn.Sequential(
        nn.Conv2d(3, ch(64), 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(ch(64), ch(192), 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(ch(192), ch(384), 3, padding=1), nn.ReLU(True),
        nn.Conv2d(ch(384), ch(256), 3, padding=1), nn.ReLU(True),
        nn.Conv2d(ch(256), ch(256), 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(ch(256) * 36, ch(4096)), nn.ReLU(True),
        nn.Dropout(dropout), nn.Linear(ch(4096), ch(4096)), nn.ReLU(True),
        nn.Linear(ch(4096), num_classes),
    )


def basic(cin, cout, k, s=1, p=0):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout, eps=0.001), nn.ReLU(True))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool):
        super().__init__()
        self.b1 = basic(cin, c1, 1)
        self.b2 = nn.Sequential(basic(cin, c3r, 1), basic(c3r, c3, 3, 1, 1))
        self.b3 = nn.Sequential(basic(cin, c5r, 1), basic(c5r, c5, 3, 1, 1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), basic(cin, pool, 1))
        self.out = c1 + c3 + c5 + pool

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def googlenet(w, num_classes, dropout):
    ch = scaler(w)
    layers = [basic(3, ch(64), 7, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True), basic(ch(64), ch(64), 1),
              basic(ch(64), ch(192), 3, 1, 1), nn.MaxPool2d(3, 2, ceil_mode=True)]
    cin = ch(192)
    spec = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool", (192, 96, 208, 16, 48, 64),
            (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
            (256, 160, 320, 32, 128, 128), "pool2", (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]
    for s in spec:
        if s == "pool":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        elif s == "pool2":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            block = Inception(cin, *[ch(c) for c in s])
            layers.append(block)
            cin = block.out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


class Fire(nn.Module):
    def __init__(self, cin, s, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, s, 1)
        self.e1 = nn.Conv2d(s, e1, 1)
        self.e3 = nn.Conv2d(s, e3, 3, padding=1)
        self.out = e1 + e3

    def forward(self, x):
        x = F.relu(self.squeeze(x), True)
        return torch.cat([F.relu(self.e1(x), True), F.relu(self.e3(x), True)], 1)


def squeezenet(w, num_classes, dropout):
    ch = scaler(w)
    layers = [nn.Conv2d(3, ch(64), 3, 2), nn.ReLU(True), nn.MaxPool2d(3, 2, ceil_mode=True)]
    cin = ch(64)
    for s in [(16, 64, 64), (16, 64, 64), "pool", (32, 128, 128), (32, 128, 128), "pool",
              (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]:
        if s == "pool":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        else:
            block = Fire(cin, *[ch(c) for c in s])
            layers.append(block)
            cin = block.out
    layers += [nn.Dropout(dropout), nn.Conv2d(cin, num_classes, 1), nn.ReLU(True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.down(x) if self.down is not None else x), True)


def resnet18(w, num_classes, dropout):
    ch = scaler(w)
    layers = [nn.Conv2d(3, ch(64), 7, 2, 3, bias=False), nn.BatchNorm2d(ch(64)), nn.ReLU(True), nn.MaxPool2d(3, 2, 1)]
    cin = ch(64)
    for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [Block(cin, ch(planes), stride), Block(ch(planes), ch(planes), 1)]
        cin = ch(planes)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


SCALED = {"alexnet": alexnet, "googlenet": googlenet, "squeezenet": squeezenet, "resnet18": resnet18}


def torchvision_model(name, num_classes, dropout):
    m = torchvision.models
    if name == "alexnet":
        return m.alexnet(num_classes=num_classes, dropout=dropout)
    if name == "googlenet":
        return m.googlenet(num_classes=num_classes, aux_logits=False, init_weights=True, transform_input=False, dropout=dropout)
    if name == "squeezenet":
        model = m.squeezenet1_1(num_classes=num_classes, dropout=dropout)
        return model
    return m.resnet18(num_classes=num_classes)


def backbone(name, width, num_classes=2, dropout=0.5):
    if width == 1:
        return torchvision_model(name, num_classes, dropout), "torchvision"
    return SCALED[name](width, num_classes, dropout), "width-scaled copy"


def self_check():
    """The width-scaled copies at width 1 must have torchvision's parameter shapes, in order."""
    for name, make in SCALED.items():
        mine = sorted(tuple(p.shape) for p in make(1, 2, 0.5).parameters())
        theirs = sorted(tuple(p.shape) for p in torchvision_model(name, 2, 0.5).parameters())
        if mine != theirs:
            raise RuntimeError(f"width-scaled {name} at width 1 differs from torchvision's")


# --------------------------------------------------------------------------------------------
# Timing


def timed_steps(case, step):
    """Warm-up steps, then timed steps until minSteps and targetSeconds, or maxSteps."""
    t0 = time.perf_counter()
    for _ in range(case["warmup"]):
        step()
    emit({"type": "warm", "id": case["id"]})
    t1 = time.perf_counter()
    steps = 0
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t1
        if steps >= case["maxSteps"] or (steps >= case["minSteps"] and elapsed >= case["targetSeconds"]):
            break
    return {"imagesPerSecond": steps * case["batch"] / elapsed, "secondsPerStep": elapsed / steps,
            "steps": steps, "warmupSeconds": t1 - t0}


def noise_uint8(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g).to(DEVICE)


def gan_case(c):
    torch.manual_seed(1)
    g = generator(c["imageSize"], c["latentDim"], c["generatorWidth"]).to(DEVICE)
    d = discriminator(c["imageSize"], c["discriminatorWidth"]).to(DEVICE)
    for m in (g, d):
        m.train()
    opt_g = torch.optim.Adam(g.parameters(), lr=c["learningRate"], betas=(c["beta1"], 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=c["learningRate"], betas=(c["beta1"], 0.999))
    reals_u8 = noise_uint8(c["batch"] * 2, c["imageSize"], 1)
    reals = reals_u8.float() / 127.5 - 1
    b = c["batch"]

    def step():
        idx = torch.randperm(reals.shape[0], device=DEVICE)[:b]
        real = reals[idx]
        z = torch.randn(b, c["latentDim"], device=DEVICE)
        # D update: G runs forward in training mode, no gradient through it.
        opt_d.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = g(z)
        real_logits, fake_logits = d(real), d(fake)
        d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        d_loss.backward()
        opt_d.step()
        # G update: input gradients through D, no weight gradients for D.
        opt_g.zero_grad(set_to_none=True)
        d.requires_grad_(False)
        fake_logits = d(g(z))
        g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        g_loss.backward()
        opt_g.step()
        d.requires_grad_(True)
        return d_loss.item(), g_loss.item()

    return {"params": params(g, d), **timed_steps(c, step)}


def to_input(u8):
    x = u8.float().div_(255).expand(-1, 3, -1, -1)
    return (x - MEAN) / STD


def train_case(c):
    torch.manual_seed(1)
    model, source = backbone(c["backbone"], c["widthMultiplier"], 2, c["dropout"])
    model.to(DEVICE).train()
    opt = torch.optim.Adam(model.parameters(), lr=c["learningRate"])
    images = noise_uint8(c["batch"], c["inputSize"], 2)
    labels = torch.arange(c["batch"], device=DEVICE) % 2

    def step():
        x = to_input(images)
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        return loss.item(), (logits.argmax(1) == labels).sum().item()

    return {"params": params(model), "note": source, **timed_steps(c, step)}


def infer_case(c):
    torch.manual_seed(1)
    model, source = backbone(c["backbone"], c["widthMultiplier"], 2, c["dropout"])
    model.to(DEVICE).eval()
    images = noise_uint8(c["batch"], c["inputSize"], 3)

    def step():
        with torch.inference_mode():
            return model(to_input(images)).argmax(1).tolist()

    return {"params": params(model), "note": source, **timed_steps(c, step)}


def ingest(spec):
    """Pillow doing what lib/images.ts does with sharp: decode, grayscale, resize, PNG level 9."""
    from PIL import Image
    files = spec["files"]
    blobs = [open(f, "rb").read() for f in files]
    results = []
    for size in spec["sizes"]:
        def one(data):
            with Image.open(io.BytesIO(data)) as im:
                out = im.convert("L").resize((size, size), Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                out.save(buf, "PNG", compress_level=9)
                return buf.getvalue()
        for data in blobs[:8]:
            one(data)
        t0 = time.perf_counter()
        for data in blobs:
            one(data)
        elapsed = time.perf_counter() - t0
        results.append({"id": f"ingest-decode/{size}", "status": "ok", "imagesPerSecond": len(blobs) / elapsed,
                        "steps": len(blobs), "batch": 1, "secondsPerStep": elapsed / len(blobs), "note": "Pillow, 1 thread"})
    return results


def pick_threads():
    """PyTorch's OpenMP threads spin at barriers; on a loaded machine a thread that loses its
    core stalls the others and 2 threads can run 10x slower than 1. Time a small conv with the
    default count and with 1 and keep the faster (PNEUMOGAN_BENCH_TORCH_THREADS forces one)."""
    forced = os.environ.get("PNEUMOGAN_BENCH_TORCH_THREADS")
    if forced:
        torch.set_num_threads(int(forced))
        return int(forced), "forced by PNEUMOGAN_BENCH_TORCH_THREADS"
    default = torch.get_num_threads()
    if default <= 1:
        return default, "default"
    conv = nn.Conv2d(32, 64, 3, padding=1)
    x = torch.randn(16, 32, 32, 32)

    def cost(n):
        torch.set_num_threads(n)
        with torch.inference_mode():
            conv(x)
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                conv(x)
                times.append(time.perf_counter() - t0)
        return sorted(times)[3]

    many, one = cost(default), cost(1)
    many = min(many, cost(default))  # a second chance for the default: the load may have dipped
    if one < 0.9 * many:
        torch.set_num_threads(1)
        return 1, f"a probe conv ran {many / one:.1f}x slower on {default} threads than on 1: the cores are busy with other work"
    torch.set_num_threads(default)
    return default, f"a probe conv ran {one / many:.1f}x faster on {default} threads than on 1"


def main():
    import PIL
    if sys.argv[1] == "--probe-threads":
        threads, why = pick_threads()
        emit({"type": "threads", "threads": threads, "cores": os.cpu_count(), "why": why})
        emit({"type": "done"})
        return
    if sys.argv[1] == "--ingest":
        emit({"type": "hello", "backend": "pytorch", "packageName": f"Pillow {PIL.__version__}"})
        for r in ingest(json.loads(sys.argv[2])):
            emit({"type": "result", **r})
        emit({"type": "done"})
        return
    cases = json.loads(sys.argv[1])
    threads, why = pick_threads()
    on = f" on {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else ""
    emit({"type": "hello", "backend": "pytorch",
          "packageName": f"torch {torch.__version__}, torchvision {torchvision.__version__}{on}",
          "threads": threads, "threadsWhy": why, "mkldnn": torch.backends.mkldnn.is_available()})
    self_check()
    for c in cases:
        emit({"type": "start", "id": c["id"]})
        try:
            fn = gan_case if c["kind"] == "gan-train" else train_case if c["kind"] == "cls-train" else infer_case
            result = {"id": c["id"], "status": "ok", "batch": c["batch"], **fn(c)}
        except Exception as err:  # noqa: BLE001 -- one failed case must not end the others
            result = {"id": c["id"], "status": "failed", "note": str(err).split("\n")[0]}
        emit({"type": "result", **result})
    emit({"type": "done"})


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # noqa: BLE001
        emit({"type": "fatal", "message": f"{type(err).__name__}: {err}".split("\n")[0]})
        sys.exit(1)
