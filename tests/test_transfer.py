"""Starting from a pretrained backbone: a previous run's layers, a keras-hub preset saved
in a local folder, the two fine-tuning phases, and the one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, one_line_error, write_image_folder

FAST = (
    "--set", "train.verbose=0",
    "--set", "train.fine_tune.head_epochs=2",
    "--set", "train.epochs=1",
    "--set", "report.enabled=false",
)  # fmt: skip


def run_dir_of(folder: Path, recipe: str = "image-transfer") -> Path:
    (run_dir,) = (folder / "runs" / recipe).iterdir()
    return run_dir


def test_fine_tune_from_a_previous_run_freezes_then_unfreezes(workdir: Path, trained_run: Path):
    from dltoolkit.models import backbone_of, load_model

    result = invoke(
        "recipe", "image-transfer", *FAST,
        "--data", "builtin:digits",
        "--set", f"model.backbone=run:{trained_run}",
        "--set", "train.fine_tune.unfreeze=1",
        "--set", "train.epochs=2",
        "--set", "export.enabled=false",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "phase 1: the new head alone for 2 epochs" in result.output
    assert "phase 2: 1 backbone layers unfrozen, 2 epochs" in result.output
    run_dir = run_dir_of(workdir)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2", "3"]
    tuned = backbone_of(load_model(run_dir / "model.keras"))
    source = load_model(trained_run / "model.keras")
    weighted = [layer for layer in tuned.layers if layer.weights]
    unchanged = [
        all(
            np.array_equal(mine, theirs)
            for mine, theirs in zip(
                layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True
            )
        )
        for layer in weighted
    ]
    # Only the last weighted layer trained in phase 2; the rest (Normalization and
    # BatchNormalization included) kept the pretrained weights through both phases.
    assert unchanged == [True] * (len(weighted) - 1) + [False], [layer.name for layer in weighted]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4


def save_tiny_preset(folder: Path) -> Path:
    """A small keras-hub ResNet image classifier saved as a preset folder (random weights:
    the test is of the code path, not of what the weights know)."""
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
        stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3),
    )  # fmt: skip
    converter = keras_hub.layers.ResNetImageConverter(image_size=(16, 16), scale=1 / 255.0)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(converter)
    classifier = keras_hub.models.ResNetImageClassifier(
        backbone, num_classes=2, preprocessor=preprocessor
    )
    classifier.save_to_preset(str(folder))
    return folder


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") != "tensorflow", reason="keras-hub's "
                    "path is the same on every backend; it runs once, on TensorFlow")  # fmt: skip
def test_keras_hub_preset_from_a_local_folder_end_to_end(workdir: Path):
    pytest.importorskip("keras_hub")
    preset = save_tiny_preset(workdir / "preset")
    images = write_image_folder(workdir / "images", classes=2, per_class=12, size=20)
    result = invoke(
        "recipe", "image-transfer", *FAST,
        "--data", f"images:{images}",
        "--set", "data.image_size=null",
        "--set", f"model.backbone=hub:{preset}",
        "--set", "export.model_name=tuned",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import tensorflow as tf

    served = tf.saved_model.load(str(workdir / "saved_models" / "tuned" / "1"))
    signature = served.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert tuple(spec.shape) == (None, 20, 20, 3)  # raw pixels in; the converter is inside
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 20, 20, 3)).astype(np.float32)
    outputs = signature(**{spec.name: tf.constant(pixels)})
    assert outputs["probabilities"].shape == (3, 2)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (["train.fine_tune.head_epochs=2"], "train.fine_tune is set, but the model has no "
         "pretrained backbone (builder 'cnn')"),
        (["model.backbone=hub:./no/such/preset"],
         "keras-hub preset folder './no/such/preset' does not exist"),
        (["model.backbone=hub:no_such_preset_anywhere"],
         "is neither a preset name keras-hub knows nor a preset folder"),
        (["model.backbone=imagenet"],
         "is not hub:PRESET, applications:NAME or run:PATH"),
        (["model.backbone=applications:ResNet50", "model.weights=missing.h5"],
         "model.weights 'missing.h5' does not exist"),
    ],
)  # fmt: skip
def test_backbone_mistakes_are_one_line(workdir: Path, settings: list[str], expected: str):
    recipe = "cnn-image" if settings[0].startswith("train.") else "image-transfer"
    arguments = [argument for setting in settings for argument in ("--set", setting)]
    images = write_image_folder(workdir / "images", classes=2, per_class=6, size=8)
    message = one_line_error(invoke("recipe", recipe, "--data", f"images:{images}", *arguments))
    assert expected in message
    assert not (workdir / "runs").exists()


@pytest.mark.backend_neutral
def test_a_backbone_that_takes_other_images_is_one_line(workdir: Path, trained_run: Path):
    images = write_image_folder(workdir / "images", classes=2, per_class=6, size=8)
    arguments = ["--data", f"images:{images}", "--set", f"model.backbone=run:{trained_run}"]
    message = one_line_error(invoke("recipe", "image-transfer", *arguments))
    assert "takes images with 1 channels, the data has 3; set data.color_mode" in message
