"""Signed bundles on aarch64: posetok[signing] (model-signing, cryptography) imports in the board's
Python, a bundle signed there verifies, and a changed byte or an added file is refused."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from posetok import PoseTokenizer, SignatureError, signing
from posetok.bundle import MANIFEST_NAME, SIGNATURE_NAME


@pytest.fixture(scope="module")
def signed(host_result, tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    folder = tmp_path_factory.mktemp("signed")
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "key.pem", folder / "key.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    root = folder / "bundle"
    shutil.copytree(host_result("bundle"), root)
    started = time.perf_counter()
    signing.sign_bundle(root, private)
    print(f"signed {len(list(root.iterdir())) - 1} files in {time.perf_counter() - started:.2f} s")
    return root, public


def test_signed_bundle_verifies_and_loads(signed):
    root, public = signed
    started = time.perf_counter()
    signing.verify_bundle(root, public)
    print(f"aarch64 (emulated): signature check {1e3 * (time.perf_counter() - started):.0f} ms")
    with PoseTokenizer.from_bundle(root, backend="onnxruntime", precision="fp32", public_key=public) as tok:
        ids = tok.encode(np.full((13, 2), 32.0, np.float32))
    assert ids.shape == (tok.num_tokens,)


@pytest.mark.parametrize("victim", ["model", MANIFEST_NAME, SIGNATURE_NAME, "added"])
def test_tampered_bundle_is_refused(signed, tmp_path, victim):
    root, public = signed
    copy = tmp_path / "bundle"
    shutil.copytree(root, copy)
    if victim == "added":
        name = "extra.onnx"
        (copy / name).write_bytes(b"\0")
    else:
        name = sorted(p.name for p in copy.glob("*.onnx"))[0] if victim == "model" else victim
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
    with pytest.raises(SignatureError) as info:
        PoseTokenizer.from_bundle(copy, backend="onnxruntime", public_key=public)
    assert info.value.file == name and name in str(info.value)
