"""``--device`` parsing shared by every command (nlseg.runtime.device)."""

from __future__ import annotations

import pytest
import torch

from nlseg.errors import InputError
from nlseg.runtime.device import describe_device, resolve_device


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == resolve_device(None).type == expected


@pytest.mark.parametrize("flag", ["bogus", "tpu", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_unusable_devices_name_the_parameter(flag):
    """The library names its parameter; the command line shows it as --device."""
    with pytest.raises(InputError) as caught:
        resolve_device(flag)
    assert caught.value.param == "device" and str(caught.value).startswith("device: ")
    assert caught.value.as_flag({}).startswith("--device: ")


def test_cpu_description_names_threads():
    assert describe_device("cpu").endswith(f"({torch.get_num_threads()} threads)")
