"""The conditioning layer without training: what each condition kind accepts, and the one-line errors it gives."""

from __future__ import annotations

import pytest
import torch

from cvaelib.conditioning import (CELEBA_ATTRIBUTES, AttributeConditioning, ClipConditioning, Conditioning,
                                  LabelConditioning, Request, attributes_from_prompt, conditioning_for,
                                  parse_attributes)
from cvaelib.errors import KitError, PromptError
from cvaelib.models import AttributeCVAE, ConditionalVAE, ConvVAE, ResidualVAE, VQVAE, build_model

SMALL = dict(image_shape=(3, 32, 32), latent_dim=8, width=4)


def test_each_model_gets_the_conditioning_of_its_kind_not_of_its_name():
    kinds = {ConvVAE(): (None, Conditioning), ConditionalVAE(): ("label", LabelConditioning),
             VQVAE(num_classes=10): ("label", LabelConditioning), VQVAE(num_classes=0): (None, Conditioning),
             AttributeCVAE(**SMALL): ("attributes", AttributeConditioning),
             ResidualVAE(**SMALL, condition_dim=12): ("clip", ClipConditioning),
             ResidualVAE(**SMALL, injection="none"): (None, Conditioning)}
    for model, (kind, cls) in kinds.items():
        assert model.condition == model.config["condition"] == kind, model.name
        assert type(conditioning_for(model)) is cls, model.name
        assert build_model(model.config).condition == kind  # the config alone says the kind


def test_attribute_lists_names_values_and_near_misses():
    names = CELEBA_ATTRIBUTES
    assert parse_attributes("Smiling,Eyeglasses,-Male", names) == {"Smiling": 1.0, "Eyeglasses": 1.0, "Male": 0.0}
    assert parse_attributes(" smiling , blond hair=0.5, !young", names) == {"Smiling": 1.0, "Blond_Hair": 0.5,
                                                                             "Young": 0.0}
    with pytest.raises(KitError, match=r"^unknown attribute 'Smilling'; did you mean 'Smiling'\?$"):
        parse_attributes("Smilling", names)
    with pytest.raises(KitError, match="known attributes: 5_o_Clock_Shadow"):
        parse_attributes("Spaceship", names)
    with pytest.raises(KitError, match="not a number"):
        parse_attributes("Smiling=lots", names)
    with pytest.raises(KitError, match="names no attribute"):
        parse_attributes(" , ", names)


def test_prompts_name_attributes_with_synonyms_and_negations():
    names = CELEBA_ATTRIBUTES
    assert attributes_from_prompt("a smiling woman with glasses", names) == {"Smiling": 1.0, "Male": 0.0,
                                                                             "Eyeglasses": 1.0}
    assert attributes_from_prompt("an old man without glasses, not smiling", names) == {
        "Young": 0.0, "Male": 1.0, "Eyeglasses": 0.0, "Smiling": 0.0}
    assert attributes_from_prompt("grey hair and a beard", names) == {"Gray_Hair": 1.0, "No_Beard": 0.0}
    with pytest.raises(PromptError, match="no attribute found in 'a red car'"):
        attributes_from_prompt("a red car", names)


def test_attribute_generation_sets_the_named_attributes_on_the_training_mean():
    torch.manual_seed(0)
    model = AttributeCVAE(**SMALL).eval()
    model.prepare_conditions(torch.rand(50, 40).round())
    cond = conditioning_for(model)
    v = cond.vector(parse_attributes("Smiling,-Male", cond.names))
    assert v[31] == 1 and v[20] == 0 and torch.equal(v[:20], model.attribute_mean[:20])
    drawn = cond.generate(Request(n=3, attributes="Smiling,-Male"))
    assert drawn.images.shape == (3, 3, 32, 32) and drawn.title == "Smiling, -Male"
    faces = torch.rand(2, 3, 32, 32)
    moved = cond.generate(Request(attributes="Smiling", images=faces, factor=1.5))
    assert moved.results.shape == (2, 3, 32, 32) and moved.images.shape == (4, 3, 32, 32)  # inputs shown above
    with pytest.raises(KitError, match="--image-npy needs --attributes"):
        cond.generate(Request(images=faces))
    with pytest.raises(KitError, match="--label does not apply to this attr-cvae model .* it takes --attributes"):
        cond.generate(Request(label="3"))


@pytest.mark.parametrize("make,given,expect", [
    (lambda: ConvVAE(), Request(label="3"), r"--label does not apply to this vae model \(unconditional\): it takes "
                                            r"no condition"),
    (lambda: ConditionalVAE(), Request(attributes="Smiling"), r"--attributes does not apply .* --label, --prompt"),
    (lambda: ConditionalVAE(), Request(), "class-conditional.*pass --label"),
    (lambda: ConditionalVAE(), Request(label="3", prompt="seven"), "either --label or --prompt"),
    (lambda: ResidualVAE(**SMALL, condition_dim=12), Request(label="3"),
     r"--label does not apply to this resvae model \(conditioned on CLIP embeddings\): it takes --prompt"),
    (lambda: ResidualVAE(**SMALL, condition_dim=12), Request(), "pass --prompt TEXT"),
])
def test_options_that_do_not_apply_are_refused_naming_those_that_do(make, given, expect):
    with pytest.raises(KitError, match=expect):
        conditioning_for(make().eval()).generate(given)


def test_reconstruction_conditions_per_kind():
    x = torch.rand(4, 1, 28, 28)
    cvae = ConditionalVAE().eval()
    label = conditioning_for(cvae)
    same = label.reconstruct(x, [1, 2, 3, 4])
    swapped = label.reconstruct(x, [1, 2, 3, 4], [5, 6, 7, 8])
    assert same.shape == swapped.shape == (4, 1, 28, 28) and not torch.allclose(same, swapped)
    torch.testing.assert_close(label.reconstruct(x, [1, 2, 3, 4], [1, 2, 3, 4]), same)
    with pytest.raises(KitError, match="pass --labels"):
        label.reconstruct(x)
    with pytest.raises(KitError, match=r"--decode-labels has shape \[3\], expected one entry per image \(4\)"):
        label.reconstruct(x, [1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(KitError, match=r"--labels must be class ids in 0..9"):
        label.reconstruct(x, [1, 2, 3, 10])
    with pytest.raises(KitError, match="whole class ids"):
        label.reconstruct(x, [1.5, 2, 3, 4])
    vq = conditioning_for(VQVAE(num_classes=10).eval())
    assert vq.reconstruct(x).shape == (4, 1, 28, 28)  # its decoder needs no class
    with pytest.raises(KitError, match="decodes without its class"):
        vq.reconstruct(x, [1, 2, 3, 4], [5, 6, 7, 8])
    with pytest.raises(KitError, match=r"--labels does not apply to this vae model \(unconditional\)"):
        conditioning_for(ConvVAE().eval()).reconstruct(x, [1, 2, 3, 4])
    attr = conditioning_for(AttributeCVAE(**SMALL).eval())
    faces, a = torch.rand(2, 3, 32, 32), torch.rand(2, 40).round()
    assert attr.reconstruct(faces, a, 1 - a).shape == (2, 3, 32, 32)
    with pytest.raises(KitError, match=r"expected \[2, 40\]"):
        attr.reconstruct(faces, torch.rand(2, 12))


def test_condition_checks_are_one_line_errors():
    cvae = ConditionalVAE().eval()
    with pytest.raises(KitError, match=r"got 3 classes for 4 images"):
        cvae.sample(4, torch.tensor([1, 2, 3]))
    with pytest.raises(KitError, match=r"class ids must be in 0..9, got 0..12"):
        cvae.sample(2, torch.tensor([0, 12]))
    with pytest.raises(KitError, match="pass class ids"):
        cvae.sample(2, torch.rand(2, 10))
    with pytest.raises(KitError, match="needs a condition"):
        AttributeCVAE(**SMALL).sample(2)
    with pytest.raises(KitError, match=r"attribute vectors of shape \[N, 40\]"):
        AttributeCVAE(**SMALL).eval().sample(2, torch.rand(2, 12))


def test_importing_the_evaluation_module_name_keeps_the_evaluate_function():
    import subprocess
    import sys

    code = ("import cvaelib, cvaelib.evaluate\n"
            "from cvaelib.evaluation import evaluate_checkpoint\n"
            "assert callable(cvaelib.evaluate) and cvaelib.evaluate.__module__ == 'cvaelib.train', cvaelib.evaluate\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]


def test_clip_package_has_no_import_cycle_and_does_not_depend_on_the_training_loop():
    """Every import inside ``cvaelib/clip/`` (function-level ones included) forms an acyclic graph, and none of them
    reaches the training loop (device helpers live in ``cvaelib.device``)."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "cvaelib" / "clip"
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module] if node.module else [a.name for a in node.names])
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module != "train", f"clip/{path.name} imports the training loop"
    graph = {k: {d.split(".")[0] for d in v if d.split(".")[0] in graph} for k, v in graph.items()}

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join(stack + (node,))}"
        for dep in graph[node]:
            visit(dep, stack + (node,))

    for name in graph:
        visit(name, ())
