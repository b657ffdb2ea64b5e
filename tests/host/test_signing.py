"""Signed bundles (posetok.signing, Bundle.load(public_key=...), posetok sign / verify, export --sign)
on the hand-built linear bundle of test_sdk_runtime: every file of a signed bundle, the manifest and the
signature included, refuses a changed byte; missing, foreign and added files are named."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from posetok import (
    Bundle,
    BundleError,
    IntegrityError,
    PoseTokenizer,
    SignatureError,
    SigningUnavailable,
    TokenizerOptions,
    cli,
    signing,
)
from posetok.bundle import MANIFEST_NAME, SIGNATURE_NAME, validate_manifest
from test_sdk_runtime import linear_bundle, poses  # noqa: F401  (the module-scoped bundle fixture)


def write_key_pair(folder: Path, name: str, password: bytes | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    crypt = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return {"signer": write_key_pair(folder, "signer"), "other": write_key_pair(folder, "other")}


@pytest.fixture(scope="module")
def signed(linear_bundle, keys, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("signed") / "bundle"
    shutil.copytree(linear_bundle[0], root)
    assert signing.sign_bundle(root, keys["signer"][0]) == root / SIGNATURE_NAME
    return root


@pytest.fixture
def copy(signed, tmp_path):
    """A fresh copy of the signed bundle to break."""
    root = tmp_path / "bundle"
    shutil.copytree(signed, root)
    return root


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def refused(root: Path, public_key: Path) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        signing.verify_bundle(root, public_key)
    return info.value


def test_signature_covers_exactly_the_manifest_and_the_files_it_lists(signed, keys):
    signing.verify_bundle(signed, keys["signer"][1])
    bundle = Bundle.load(signed, public_key=keys["signer"][1])
    envelope = json.loads((signed / SIGNATURE_NAME).read_text())
    assert envelope["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    statement = json.loads(base64.b64decode(envelope["dsseEnvelope"]["payload"]))
    covered = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    listed = {a.file: a.sha256 for a in bundle.artifacts}
    assert sorted(covered) == sorted([MANIFEST_NAME, *listed])
    assert all(covered[name] == digest for name, digest in listed.items())
    assert statement["predicate"]["serialization"]["ignore_paths"] == [SIGNATURE_NAME]


def test_one_flipped_byte_in_any_file_is_refused_naming_it(signed, keys, tmp_path):
    names = sorted(p.name for p in signed.iterdir())
    assert len(names) == 4 and SIGNATURE_NAME in names and MANIFEST_NAME in names
    for name in names:
        size = (signed / name).stat().st_size
        for offset in sorted({0, size // 2, size - 1}):
            root = tmp_path / f"{name}-{offset}"
            shutil.copytree(signed, root)
            flip(root / name, offset)
            error = refused(root, keys["signer"][1])
            assert error.file == name, f"{name} byte {offset}: {error}"
            assert name in str(error)
            with pytest.raises(SignatureError, match=name.replace(".", r"\.")):
                PoseTokenizer.from_bundle(root, public_key=keys["signer"][1])


def test_every_byte_of_the_signature_is_covered(copy, keys):
    """The cryptographic check reads decoded values; the form check catches the rest (a base64 padding bit)."""
    sig = copy / SIGNATURE_NAME
    for _ in range(40):  # an ECDSA signature of 70 or 71 DER bytes has base64 padding, one of 72 has none
        if json.loads(sig.read_text())["dsseEnvelope"]["signatures"][0]["sig"].endswith("="):
            break
        signing.sign_bundle(copy, keys["signer"][0])
    pristine = sig.read_bytes()
    assert b'=","keyid"' in pristine, "no padded signature in 40 tries"
    accepted = []
    for offset in range(len(pristine)):
        data = bytearray(pristine)
        data[offset] ^= 0x01
        sig.write_bytes(bytes(data))
        try:
            signing.verify_bundle(copy, keys["signer"][1])
            accepted.append(offset)
        except SignatureError as exc:
            assert exc.file == SIGNATURE_NAME, f"byte {offset}: {exc}"
    assert accepted == [], f"bytes {accepted} of {len(pristine)} of {SIGNATURE_NAME} can change unnoticed"
    # the same signature bytes spelt with a padding bit set: decodes alike, so only the form check sees it
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    end = pristine.index(b'=","keyid"')
    while pristine[end - 1:end] == b"=":
        end -= 1
    value = alphabet.index(pristine[end - 1])
    respelt = pristine[:end - 1] + alphabet[value ^ 1:(value ^ 1) + 1] + pristine[end:]
    field = json.loads(respelt)["dsseEnvelope"]["signatures"][0]["sig"]
    assert base64.b64decode(field) == base64.b64decode(json.loads(pristine)["dsseEnvelope"]["signatures"][0]["sig"])
    sig.write_bytes(respelt)
    assert "not canonical base64" in str(refused(copy, keys["signer"][1]))
    sig.write_bytes(pristine)
    signing.verify_bundle(copy, keys["signer"][1])


def test_missing_signature_says_so(copy, keys):
    (copy / SIGNATURE_NAME).unlink()
    error = refused(copy, keys["signer"][1])
    assert error.file == SIGNATURE_NAME and "not signed" in str(error) and "missing" in str(error)
    with pytest.raises(SignatureError, match="is missing"):
        PoseTokenizer.from_bundle(copy, options=TokenizerOptions(public_key=str(keys["signer"][1])))
    Bundle.load(copy)  # without a key: as before signing existed


def test_another_key_is_refused(copy, keys):
    error = refused(copy, keys["other"][1])
    assert error.file == SIGNATURE_NAME and "another key" in str(error)


def test_added_file_or_folder_is_refused_and_named(copy, keys):
    for extra in (".gitignore", "notes.txt"):
        (copy / extra).write_text("x\n")
        error = refused(copy, keys["signer"][1])
        assert error.file == extra and "not covered by the signature" in str(error)
        (copy / extra).unlink()
    (copy / "sub").mkdir()
    (copy / "sub" / "a.onnx").write_bytes(b"\0")
    assert refused(copy, keys["signer"][1]).file == "sub/a.onnx"
    (copy / "sub" / "a.onnx").unlink()          # an empty folder: model-signing hashes files and passes it over
    error = refused(copy, keys["signer"][1])
    assert error.file == "sub" and "sub/: a folder not covered by the signature" in str(error)
    shutil.rmtree(copy / "sub")
    signing.verify_bundle(copy, keys["signer"][1])


def test_removed_file_and_symlink_are_refused(copy, keys):
    victim = sorted(p.name for p in copy.glob("*.onnx"))[0]
    moved = copy.parent / victim
    (copy / victim).rename(moved)
    error = refused(copy, keys["signer"][1])
    assert error.file == victim and "missing from the bundle" in str(error)
    (copy / victim).symlink_to(moved)  # same bytes, through a link
    assert "symlink" in str(refused(copy, keys["signer"][1]))


def test_without_a_key_a_signed_or_tampered_signature_loads_as_before(copy):
    Bundle.load(copy)
    flip(copy / SIGNATURE_NAME, 10)
    with PoseTokenizer.from_bundle(copy) as tok:
        assert tok.encode(poses(3)).shape == (3, tok.num_tokens)


def test_sign_refuses_unlisted_files_and_broken_bundles(copy, keys):
    (copy / "README.txt").write_text("hello\n")
    with pytest.raises(BundleError, match=r"README\.txt not listed in manifest\.json"):
        signing.sign_bundle(copy, keys["signer"][0])
    (copy / "README.txt").unlink()
    signature = (copy / SIGNATURE_NAME).read_bytes()
    (copy / SIGNATURE_NAME).unlink()
    (copy / SIGNATURE_NAME).mkdir()
    with pytest.raises(BundleError, match=r"model\.sig is not a file; a signature is a regular file"):
        signing.sign_bundle(copy, keys["signer"][0])
    (copy / SIGNATURE_NAME).rmdir()
    (copy / SIGNATURE_NAME).symlink_to(copy / MANIFEST_NAME)
    with pytest.raises(BundleError, match=r"model\.sig is a link; a signature is a regular file"):
        signing.sign_bundle(copy, keys["signer"][0])
    (copy / SIGNATURE_NAME).unlink()
    (copy / SIGNATURE_NAME).write_bytes(signature)
    victim = sorted(copy.glob("*.onnx"))[0]
    flip(victim, 5)
    with pytest.raises(IntegrityError, match=victim.name):
        signing.sign_bundle(copy, keys["signer"][0])


def test_manifest_cannot_list_its_own_files(linear_bundle):  # noqa: F811
    manifest = json.loads((linear_bundle[0] / MANIFEST_NAME).read_text())
    for reserved in (SIGNATURE_NAME, MANIFEST_NAME):
        manifest["artifacts"][0]["file"] = reserved
        with pytest.raises(BundleError, match="reserved"):
            validate_manifest(manifest)


def test_keys_that_cannot_be_used(copy, keys, tmp_path):
    private, _ = write_key_pair(tmp_path, "locked", password=b"s3cret")
    signing.sign_bundle(copy, private, password=b"s3cret")
    signing.verify_bundle(copy, tmp_path / "locked.pub.pem")
    with pytest.raises(ValueError, match="private key"):
        signing.sign_bundle(copy, private, password=b"wrong")
    with pytest.raises(ValueError, match="cannot be read"):
        signing.verify_bundle(copy, tmp_path / "absent.pem")
    with pytest.raises(ValueError, match="not a usable elliptic-curve public key"):
        signing.verify_bundle(copy, copy / MANIFEST_NAME)
    with pytest.raises(ValueError, match="public_key must be None or a path"):
        TokenizerOptions(public_key=3)
    with pytest.raises(TypeError, match="public_key="):
        PoseTokenizer.from_bundle(copy, public_key="k.pem", options=TokenizerOptions())


def test_without_the_extra_a_key_gives_a_clear_error(copy, keys, monkeypatch):
    for name in [m for m in sys.modules if m == "model_signing" or m.startswith("model_signing.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "model_signing", None)  # import fails
    with pytest.raises(SigningUnavailable, match=r"pip install 'posetok\[signing\]'") as info:
        Bundle.load(copy, public_key=keys["signer"][1])
    assert isinstance(info.value, ImportError)
    Bundle.load(copy)  # no key, no model-signing needed
    assert cli.main(["verify", str(copy), "--public-key", str(keys["signer"][1])]) == 2


def test_model_signing_loads_only_when_a_key_is_given(linear_bundle):  # noqa: F811
    code = ("import sys, posetok, posetok.signing, posetok.sign_cli; from posetok import Bundle; "
            f"Bundle.load({str(linear_bundle[0])!r}); print(sorted(m for m in sys.modules if 'model_signing' in m "
            "or m.startswith(('sigstore', 'cryptography'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_sign_and_verify_exit_codes_and_json(linear_bundle, keys, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "bundle"
    shutil.copytree(linear_bundle[0], root)
    private, public = keys["signer"]
    assert cli.main(["sign", str(root), "--private-key", str(private)]) == 0
    assert "covering 3 files" in capsys.readouterr().out
    assert cli.main(["verify", str(root), "--public-key", str(public), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["error"] is None and result["bundle"] == str(root)
    assert 0 < result["verify_ms"] < 2000
    flip(root / MANIFEST_NAME, 3)
    assert cli.main(["verify", str(root), "--public-key", str(public), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["file"] == MANIFEST_NAME and MANIFEST_NAME in result["error"]
    assert cli.main(["verify", str(root), "--public-key", str(public)]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert cli.main(["verify", str(root), "--public-key", str(tmp_path / "absent.pem")]) == 2
    assert "absent.pem: cannot be read" in capsys.readouterr().err
    assert cli.main(["sign", str(root), "--private-key", str(private)]) == 1  # a broken bundle is never signed
    assert "manifest.json is not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", str(root)])  # no --public-key
    assert exit_.value.code == 2


@pytest.mark.slow
@pytest.mark.export
def test_export_sign_writes_a_verifying_bundle(keys, tmp_path):
    from posetok_converters.export import ExportOptions, export_bundle
    out = tmp_path / "bundle"
    with pytest.raises(ValueError, match="private key"):  # a bad key fails before the export starts
        export_bundle(out, options=ExportOptions(formats=("onnx",), precisions=("fp32",), parity=False,
                                                 parity_poses=256),
                      progress=lambda msg: None, sign_key=keys["signer"][1])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert cli.main(["export", "--out", str(out), "--formats", "onnx", "--precisions", "fp32", "--no-parity",
                     "--parity-poses", "256", "--estimator", "none", "--sign", str(keys["signer"][0])]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["decoder.fp32.onnx", "encoder.fp32.onnx", MANIFEST_NAME, SIGNATURE_NAME])
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # nothing left beside it
    with PoseTokenizer.from_bundle(out, public_key=keys["signer"][1]) as tok:
        assert tok.encode(poses(2)).shape == (2, tok.num_tokens)
    assert refused(out, keys["other"][1]).file == SIGNATURE_NAME
