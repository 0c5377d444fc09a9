"""Export metadata: the stored form round-trips, foreign entries survive, damage gets one clear line."""

from __future__ import annotations

import json

import onnx
import pytest

from nlseg.data.labels import BDD100K_CLASSES, BDD100K_PALETTE
from nlseg.errors import InputError
from nlseg.nn.config import ModelConfig
from nlseg.contract import class_labels
from nlseg.onnx.metadata import PREFIX, ModelMetadata, WeightsOrigin, read_metadata, write_metadata

CONFIG = ModelConfig.from_preset("bdd100k", blocks=(1, 1, 1), channels=(8, 8, 8), nonlocal_kernel="log", pool=0)


def metadata(**changes) -> ModelMetadata:
    names, palette = class_labels(CONFIG, "bdd100k", {})
    fields = dict(config=CONFIG, class_names=names, palette=palette, input_size=(90, 160), mean=(0.1, 0.2, 0.3),
                  std=(0.5, 0.5, 0.25), graph="plugin", precision="float16", dynamic_axes=("batch", "height", "width"),
                  outputs=("logits", "labels"), weights=WeightsOrigin("random-init", "ab" * 32, seed=5),
                  dataset="bdd100k", nlseg_version="0.1.0")
    fields.update(changes)
    return ModelMetadata(**fields)


def tiny_model() -> onnx.ModelProto:
    node = onnx.helper.make_node("Relu", ["image"], ["logits"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [value("image", 1, [1])], [value("logits", 1, [1])])
    return onnx.helper.make_model(graph)


def test_round_trip_through_a_file(tmp_path):
    model = tiny_model()
    model.metadata_props.add(key="author", value="someone")
    write_metadata(model, metadata(weights=WeightsOrigin("checkpoint", "cd" * 32, path="/w/model.pt")))
    write_metadata(model, metadata())  # rewriting replaces nlseg entries, keeps others
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_metadata(path) == metadata()
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["author"] == "someone" and sum(k.startswith(PREFIX) for k in props) == len(metadata().to_props())
    assert json.loads(props["nlseg.model_config"])["nonlocal_kernel"] == "log"
    assert json.loads(props["nlseg.palette"])[0] == [128, 64, 128]


def test_labels_come_from_the_checkpoint_bdd100k_or_are_generic():
    assert class_labels(CONFIG, None, {}) == (BDD100K_CLASSES, BDD100K_PALETTE)
    own = {"class_names": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}
    two = ModelConfig.from_preset("bdd100k", num_classes=2)
    assert class_labels(two, None, own) == (("a", "b"), ((1, 2, 3), (4, 5, 6)))
    names, palette = class_labels(ModelConfig.from_preset("cifar10"), "cifar10", {})
    assert names == tuple(str(i) for i in range(10)) and len(set(palette)) == 10
    assert all(0 <= c <= 255 for colour in palette for c in colour)
    with pytest.raises(InputError, match="do not match"):
        class_labels(ModelConfig.from_preset("cifar10"), None, own)


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda props: props.pop("nlseg.graph"), "nlseg.graph"),
        (lambda props: props.update({"nlseg.weights": "{not json"}), "nlseg.weights"),
        (lambda props: props.update({"nlseg.weights": '{"source": "zoo", "sha256": ""}'}), "unknown source"),
        (lambda props: props.update({"nlseg.metadata_version": "9"}), "newer"),
        (lambda props: props.update({"nlseg.model_config": '{"colour": 1}'}), "unknown model config keys"),
    ],
)
def test_damaged_metadata_is_one_line_naming_the_file(tmp_path, damage, needle):
    props = metadata().to_props()
    damage(props)
    model = tiny_model()
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "damaged.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InputError) as info:
        read_metadata(path)
    message = str(info.value)
    assert str(path) in message and needle in message and "\n" not in message
