"""The report's ConvAE / ConvVAE: layer shapes, the same maths as the report's module-by-module network
(values and gradients), no biases, BatchNorm placement, the matmul fast paths, the public API (embed,
reconstruct, loss) and that a few Adam steps on real MNIST lower the loss."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vae.data import to_float
from vae.model import ConvAE, ConvVAE, ModelConfig, build_model, conv_to_1x1
from vae.train import evaluate_loss

LATENTS = (2, 3, 64)
KINDS = ("ae", "vae")

ENCODER_SHAPES = {"encoder.conv1": (4, 14, 14), "encoder.conv2": (16, 7, 7), "encoder.conv3": (64, 3, 3)}
DECODER_SHAPES = {"decoder.conv3": (16, 7, 7), "decoder.conv2": (4, 14, 14), "decoder.conv1": (1, 28, 28)}
# BatchNorm: name → (channels, the conv whose output it normalises)
BATCHNORMS = {
    "encoder.bn2": (16, "encoder.conv2"),
    "encoder.bn3": (64, "encoder.conv3"),
    "decoder.bn4": (64, None),  # decoder.conv4 runs as a matmul, not as a module call
    "decoder.bn3": (16, "decoder.conv3"),
    "decoder.bn2": (4, "decoder.conv2"),
}


def _model(kind: str, latent: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(kind, latent)


@pytest.fixture(scope="module")
def real_batch(mnist):
    return to_float(mnist.test_images[:256])


def report_forward(model, x: torch.Tensor, record: dict | None = None):
    """The report's network called module by module, as its code does: (z or posterior mean, logits).

    The model itself runs the same modules' weights through faster kernels (vae/kernels.py);
    every test below holds it to this literal version.
    """
    record = {} if record is None else record
    enc, dec = model.encoder, model.decoder
    act = F.leaky_relu
    record["encoder.conv1"] = h = enc.conv1(x)
    record["encoder.conv2"] = h = enc.conv2(act(h))
    record["encoder.conv3"] = h = enc.conv3(act(enc.bn2(h)))
    h = act(enc.bn3(h))
    head = model.conv4 if model.kind == "ae" else model.conv_mean
    record["head"] = out = head(h)
    z = out.flatten(1)
    if model.kind == "vae":
        std = F.softplus(model.conv_std(h).flatten(1)) + 1e-5
        z_used = z + std * torch.randn_like(std) if model.training else z
    else:
        z_used = z
    record["decoder.conv4"] = g = dec.conv4(z_used.view(len(x), -1, 1, 1))
    record["decoder.conv3"] = g = dec.conv3(act(dec.bn4(g)))
    record["decoder.conv2"] = g = dec.conv2(act(dec.bn3(g)))
    record["decoder.conv1"] = g = dec.conv1(act(dec.bn2(g)))
    return z, g


@pytest.mark.parametrize("latent", LATENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_layer_shapes_match_the_report(kind, latent):
    model = _model(kind, latent).eval()
    x = torch.rand(5, 1, 28, 28)
    shapes = {}
    with torch.no_grad():
        report_forward(model, x, shapes)
        z = model.embed(x)
        logits = model.decoder(z)
    for name, shape in {**ENCODER_SHAPES, **DECODER_SHAPES}.items():
        assert tuple(shapes[name].shape) == (5, *shape), name
    assert tuple(shapes["head"].shape) == (5, latent, 1, 1)
    assert tuple(shapes["decoder.conv4"].shape) == (5, 64, 3, 3)
    assert z.shape == (5, latent)
    assert logits.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("latent", LATENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_model_computes_exactly_the_report_network(kind, latent, real_batch):
    """Same outputs in eval mode, and in train mode the same loss gradient for every weight."""
    model = _model(kind, latent).eval()
    x = real_batch[:64]
    with torch.no_grad():
        z_ref, logits_ref = report_forward(model, x)
        assert torch.allclose(model.embed(x), z_ref, atol=1e-5, rtol=1e-4)
        assert torch.allclose(model.decoder(z_ref), logits_ref, atol=1e-4, rtol=1e-4)

    # Gradients in float64: a LeakyReLU's gradient jumps at 0, so float32 rounding (1e-7) can flip
    # a unit sitting near 0 and move some gradients by 1e-2 in either version; float64 cannot.
    model = model.double().train()
    x = x.double()
    torch.manual_seed(3)
    fast = model.loss(x)["recon"]
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    torch.manual_seed(3)
    _, logits = report_forward(model, x)
    reference = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    reference_grads = torch.autograd.grad(reference, list(model.parameters()))
    assert torch.allclose(fast, reference, rtol=1e-12)
    for (name, _), g_fast, g_ref in zip(model.named_parameters(), fast_grads, reference_grads):
        scale = g_ref.abs().max().clamp(min=1e-12)
        assert (g_fast - g_ref).abs().max() / scale < 1e-10, name


@pytest.mark.parametrize("latent", (2, 64))
@pytest.mark.parametrize("kind", KINDS)
def test_the_cpu_kernels_and_the_plain_modules_give_the_same_outputs_and_gradients(kind, latent, real_batch):
    """model.py's two paths: the faster CPU kernels, and the report's modules a GPU runs (both run here)."""
    model = _model(kind, latent).double()
    x = real_batch[:64].double()
    outputs, gradients = {}, {}
    for device in ("cpu", "cuda"):  # eval first: a training step moves BatchNorm's running statistics
        model.eval().use_device_kernels(device)
        assert model.fast == (device == "cpu")
        with torch.no_grad():
            outputs[device] = (model.embed(x), model.reconstruct(x))
    for device in ("cpu", "cuda"):
        model.train().use_device_kernels(device)
        torch.manual_seed(3)
        loss = model.loss(x)["total"]
        gradients[device] = (loss, torch.autograd.grad(loss, list(model.parameters())))
    for fast, plain in zip(outputs["cpu"], outputs["cuda"]):
        assert torch.allclose(fast, plain, rtol=1e-10, atol=1e-12)
    (fast, fast_grads), (plain, plain_grads) = gradients["cpu"], gradients["cuda"]
    assert torch.allclose(fast, plain, rtol=1e-12)
    for (name, _), g_fast, g_plain in zip(model.named_parameters(), fast_grads, plain_grads):
        scale = g_plain.abs().max().clamp(min=1e-12)
        assert (g_fast - g_plain).abs().max() / scale < 1e-10, name


@pytest.mark.parametrize("kind", KINDS)
def test_no_convolution_has_a_bias(kind):
    model = _model(kind, 3)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    expected = 8 if kind == "ae" else 9  # 4 encoder (VAE: 3 + 2 heads) + 4 decoder
    assert len(convs) == expected
    for name, conv in convs:
        assert conv.bias is None, name


@pytest.mark.parametrize("kind", KINDS)
def test_batchnorm_on_the_middle_layers_only(kind):
    model = _model(kind, 3).train()
    bns = {n: m.num_features for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert bns == {name: channels for name, (channels, _) in BATCHNORMS.items()}
    # Where each BatchNorm sits is pinned by test_model_computes_exactly_the_report_network.


@pytest.mark.parametrize("latent", LATENTS)
def test_conv_to_1x1_equals_the_conv_module(latent):
    torch.manual_seed(1)
    conv = nn.Conv2d(64, latent, 3, 2, 0, bias=False)
    h = torch.randn(7, 64, 3, 3)
    fast = conv_to_1x1(conv, h)
    assert fast.shape == (7, latent)
    assert torch.allclose(fast, conv(h).flatten(1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("latent", LATENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_embed_equals_calling_the_encoder_head_module(kind, latent):
    model = _model(kind, latent).eval()
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        head = model.conv4 if kind == "ae" else model.conv_mean
        slow = head(model.encoder(x)).flatten(1)
        assert torch.allclose(model.embed(x), slow, atol=1e-5, rtol=1e-5)
        if kind == "vae":
            std = F.softplus(model.conv_std(model.encoder(x)).flatten(1))
            assert torch.allclose(model.posterior(x).stddev, std, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("latent", LATENTS)
def test_decoder_first_layer_matmul_equals_conv_transpose(latent):
    """The decoder computes conv4 as z @ weight; it must equal the ConvTranspose2d module's output."""
    torch.manual_seed(2)
    decoder = ConvVAE(latent).decoder.eval()
    z = torch.randn(9, latent)
    seen = {}
    handle = decoder.bn4.register_forward_hook(lambda mod, inp, out: seen.__setitem__("bn4", inp[0]))
    with torch.no_grad():
        decoder(z)
        module_out = decoder.conv4(z.view(9, latent, 1, 1))
    handle.remove()
    fast = seen["bn4"]  # what the forward pass fed to bn4: its matmul version of conv4
    assert fast.shape == module_out.shape == (9, 64, 3, 3)
    assert torch.allclose(fast, module_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("latent", LATENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_embed_and_reconstruct_shapes_and_range(kind, latent, real_batch):
    model = _model(kind, latent).eval()
    x = real_batch[:10]
    with torch.no_grad():
        z = model.embed(x)
        r = model.reconstruct(x)
        d = model.decode(torch.randn(3, latent) * 50)  # far outside the prior: still valid pixels
    assert z.shape == (10, latent) and z.dtype == torch.float32
    assert r.shape == (10, 1, 28, 28)
    for images in (r, d):
        assert images.min() >= 0.0 and images.max() <= 1.0
    assert model.kind == kind and model.latent_dim == latent


def test_vae_reconstruct_is_deterministic_in_eval_mode_but_forward_samples(real_batch):
    model = _model("vae", 3).eval()
    x = real_batch[:16]
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x), model.reconstruct(x))
        assert torch.equal(model.embed(x), model.embed(x))
        # forward() samples z: two calls differ, so the determinism above is not for free.
        assert not torch.equal(model(x)[0], model(x)[0])


def test_ae_loss_has_zero_kl_and_is_summed_bce(real_batch):
    model = _model("ae", 3).eval()
    x = real_batch[:32]
    with torch.no_grad():
        loss = model.loss(x)
        logits, _ = model(x)
    assert set(loss) == {"total", "recon", "kl"}
    assert float(loss["kl"]) == 0.0
    assert torch.equal(loss["total"], loss["recon"])
    expected = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / len(x)
    assert torch.allclose(loss["recon"], expected, rtol=1e-3)
    assert 300 < float(loss["recon"]) < 800  # an untrained decoder: ~ln 2 nats per pixel


@pytest.mark.parametrize("beta", [1.0, 0.25, 4.0])
def test_vae_total_is_recon_plus_beta_kl(beta, real_batch):
    torch.manual_seed(0)
    model = ConvVAE(3, beta=beta).train()
    torch.manual_seed(5)
    loss = model.loss(real_batch[:32])
    assert float(loss["kl"].detach()) > 0.0
    assert torch.allclose(loss["total"], loss["recon"] + beta * loss["kl"], rtol=1e-5, atol=1e-4)
    assert model.config.beta == beta


def test_model_config_validation():
    for bad in [dict(kind="gan"), dict(latent_dim=0), dict(latent_dim=2000), dict(latent_dim=2.5), dict(beta=-1.0)]:
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    with pytest.raises(ValueError, match="latent"):
        build_model("vae", 0)
    assert isinstance(build_model("ae", 2), ConvAE) and isinstance(build_model("vae", 2), ConvVAE)


@pytest.mark.parametrize("kind", KINDS)
def test_loss_falls_with_adam_on_real_mnist(kind, real_batch):
    torch.manual_seed(0)
    model = build_model(kind, 16)
    images = (real_batch * 255).round().to(torch.uint8)
    before = evaluate_loss(model, images)["total"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        loss = model.loss(real_batch)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate_loss(model, images)["total"]
    assert after < 0.5 * before, (before, after)  # ~545 → ~210 nats/image
