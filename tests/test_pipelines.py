"""Pipelines against transformers' pipelines (and sentence-transformers) on the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from test_pipelines_assets import MINILM, tiny
from unmask import pipeline

transformers = pytest.importorskip("transformers")
TOL = 1e-5
TEXT = ("My name is Wolfgang and I live in Berlin with Sarah Johnson-Smith, near the "
        "Brandenburger Tor.")
LONG = " ".join(["The quick brown fox jumps over the lazy dog near Berlin."] * 12)  # > 64 tokens


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {k: tiny(root / k, k) for k in ("mlm", "ner", "classify", "nli", "qa")}


def hf(task, directory):
    return transformers.pipeline(task, model=str(directory), device="cpu")


def same_proposals(ours, theirs):
    assert [p["token"] for p in ours] == [p["token"] for p in theirs]
    assert [p["token_str"] for p in ours] == [p["token_str"] for p in theirs]
    assert [p["sequence"] for p in ours] == [p["sequence"] for p in theirs]
    assert np.allclose([p["score"] for p in ours], [p["score"] for p in theirs], atol=TOL)


def test_fill_mask_matches_transformers(dirs):
    ours, theirs = pipeline("fill-mask", dirs["mlm"]), hf("fill-mask", dirs["mlm"])
    texts = ["The cat [MASK] on the mat.", "Paris is the [MASK] of [MASK].", "[MASK]"]
    got = ours(texts, top_k=4)
    for text, mine in zip(texts, got):
        ref = theirs(text, top_k=4)
        if isinstance(ref[0], dict):
            same_proposals(mine, ref)
        else:
            assert len(mine) == len(ref) == 2
            for a, b in zip(mine, ref):
                same_proposals(a, b)
    targets = ["sat", "slept", "zzzqqq", "dog"]  # one word outside the vocabulary
    same_proposals(ours(texts[0], targets=targets, top_k=10),
                   theirs(texts[0], targets=targets, top_k=10))


def test_fill_mask_refuses_bad_input(dirs):
    fill = pipeline("fill-mask", dirs["mlm"])
    with pytest.raises(ValueError, match="no mask token"):
        fill("There is nothing to fill here.")
    with pytest.raises(ValueError, match="empty"):
        fill("   ")
    with pytest.raises(ValueError, match="unknown task"):
        pipeline("translate", dirs["mlm"])
    with pytest.raises(ValueError, match="no trained masked_lm head"):
        pipeline("fill-mask", MINILM)


def reference_pll(model, tok, text):
    ids = tok(text, return_tensors="pt").input_ids[0]
    total = []
    with torch.no_grad():
        for i in range(1, len(ids) - 1):
            masked = ids.clone()
            masked[i] = tok.mask_token_id
            logits = model(masked[None]).logits[0, i]
            total.append(logits.log_softmax(-1)[ids[i]].item())
    return total


def test_score_is_the_pseudo_log_likelihood(dirs):
    score = pipeline("score", dirs["mlm"], batch_tokens=64)  # several batches
    texts = ["The cat sat on the mat.", "Colorless green ideas sleep furiously."]
    model = transformers.AutoModelForMaskedLM.from_pretrained(dirs["mlm"]).eval()
    tok = transformers.AutoTokenizer.from_pretrained(dirs["mlm"])
    for text, got in zip(texts, score(texts)):
        ref = reference_pll(model, tok, text)
        assert np.allclose([t["log_prob"] for t in got["tokens"]], ref, atol=1e-4)
        assert got["pll"] == pytest.approx(sum(ref), abs=1e-3)
        assert got["pppl"] == pytest.approx(math.exp(-sum(ref) / len(ref)), rel=1e-4)


def test_joint_fill_returns_whole_sentences_ranked_by_pll(dirs):
    fill = pipeline("fill-mask", dirs["mlm"])
    text = "Paris is the [MASK] of [MASK]."
    best = fill(text, joint=True, top_k=3, beam_size=4)
    assert len(best) == 3
    assert [b["pll"] for b in best] == sorted((b["pll"] for b in best), reverse=True)
    for b in best:
        assert "[MASK]" not in b["sequence"] and len(b["tokens"]) == 2
    # beam_size 1 is greedy left to right: first mask's top token given the second masked
    greedy = fill(text, joint=True, top_k=1, beam_size=1)[0]
    assert greedy["tokens"][0] == fill(text, top_k=1)[0][0]["token"]


def test_long_input_uses_windows_not_truncation(dirs):
    fill = pipeline("fill-mask", dirs["mlm"])
    text = LONG + " The last word is [MASK]."
    assert len(fill.tokenizer.encode(text)) > fill.max_length
    out = fill(text, top_k=2)
    assert len(out) == 2 and out[0]["sequence"].startswith("the quick brown fox")
    ner = pipeline("ner", dirs["ner"])
    ents = ner(LONG, aggregation="none", ignore_labels=())
    full = ner.tokenizer.encode_batch([LONG], truncation=False, padding=False)
    assert [e["index"] for e in ents] == list(range(1, len(full.input_ids[0]) - 1))
    assert all(LONG[e["start"]:e["end"]] == e["word"] for e in ents)
    labels = pipeline("classify", dirs["classify"])([LONG, "short"], top_k=None)
    assert all(abs(sum(x["score"] for x in row) - 1) < 1e-5 for row in labels)


@pytest.mark.parametrize("aggregation", ["none", "simple", "first", "average", "max"])
def test_ner_matches_transformers(dirs, aggregation):
    # transformers' spelling, where transformers takes it: at construction and per call
    ours = pipeline("ner", dirs["ner"], aggregation_strategy=aggregation)(TEXT)
    assert ours == pipeline("ner", dirs["ner"])(TEXT, aggregation_strategy=aggregation) == \
        pipeline("ner", dirs["ner"])(TEXT, aggregation=aggregation)
    theirs = hf("token-classification", dirs["ner"])(TEXT, aggregation_strategy=aggregation)
    key = "entity" if aggregation == "none" else "entity_group"
    assert [(e[key], e["start"], e["end"]) for e in ours] == \
        [(e[key], e["start"], e["end"]) for e in theirs]
    assert np.allclose([e["score"] for e in ours], [float(e["score"]) for e in theirs], atol=TOL)
    assert all(e["word"] == TEXT[e["start"]:e["end"]] for e in ours)


def test_ner_aggregation_strategy_refused_when_unknown_or_contradictory(dirs):
    with pytest.raises(ValueError, match="aggregation must be one of"):
        pipeline("ner", dirs["ner"], aggregation_strategy="mean")
    with pytest.raises(ValueError, match="disagree"):
        pipeline("ner", dirs["ner"])(TEXT, aggregation="first", aggregation_strategy="max")


def test_classify_and_zero_shot_match_transformers(dirs):
    texts = ["I loved this film", "a dull, lifeless movie", "ok"]
    ours = pipeline("classify", dirs["classify"])(texts, top_k=None)
    theirs = hf("text-classification", dirs["classify"])(texts, top_k=None)
    for a, b in zip(ours, theirs):
        assert [x["label"] for x in a] == [x["label"] for x in b]
        assert np.allclose([x["score"] for x in a], [x["score"] for x in b], atol=TOL)
    zs, ref = pipeline("zero-shot", dirs["nli"]), hf("zero-shot-classification", dirs["nli"])
    labels = ["sports", "politics", "art"]
    for multi in (False, True):
        a = zs(texts[0], candidate_labels=labels, multi_label=multi)
        b = ref(texts[0], candidate_labels=labels, multi_label=multi)
        assert a["labels"] == b["labels"]
        assert np.allclose(a["scores"], b["scores"], atol=TOL)
    with pytest.raises(ValueError, match="entailment"):
        pipeline("zero-shot", dirs["classify"])


def reference_answer(directory, question, context, max_answer_len=15):
    """transformers' question-answering pipeline (v4) decoding, on transformers' logits."""
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(directory).eval()
    tok = transformers.AutoTokenizer.from_pretrained(directory)
    enc = tok(question, context, return_offsets_mapping=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                    token_type_ids=enc.token_type_ids)
    seq = np.array([s == 1 for s in enc.sequence_ids(0)])
    undesired = ~seq
    undesired[0] = False
    start = np.where(undesired, -10000.0, out.start_logits[0].numpy())
    end = np.where(undesired, -10000.0, out.end_logits[0].numpy())
    start = np.exp(start - start.max()) / np.exp(start - start.max()).sum()
    end = np.exp(end - end.max()) / np.exp(end - end.max()).sum()
    start[0] = end[0] = 0.0
    cand = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    cand[~(seq[:, None] & seq[None, :])] = 0
    s, e = np.unravel_index(cand.argmax(), cand.shape)
    offsets = enc.offset_mapping[0]
    a, b = int(offsets[s][0]), int(offsets[e][1])
    return {"answer": context[a:b], "score": float(cand[s, e]), "start": a, "end": b}


def test_answer_matches_transformers_decoding(dirs):
    qa = pipeline("answer", dirs["qa"])
    question = "Where does Wolfgang live?"
    got = qa(question, TEXT)
    ref = reference_answer(dirs["qa"], question, TEXT)
    assert (got["answer"], got["start"], got["end"]) == (ref["answer"], ref["start"], ref["end"])
    assert got["score"] == pytest.approx(ref["score"], abs=TOL)
    long = qa([question], [LONG + " " + TEXT], top_k=3)[0]  # many windows
    assert len(long) == 3 and all(a["answer"] == (LONG + " " + TEXT)[a["start"]:a["end"]]
                                  for a in long)


def test_results_come_back_in_input_order(dirs):
    texts = [f"word {'and ' * (i % 7)}the [MASK] end" for i in range(20)]
    big = pipeline("fill-mask", dirs["mlm"])(texts, top_k=2)
    seen = []
    small = pipeline("fill-mask", dirs["mlm"], batch_tokens=40,
                     progress=lambda done, total: seen.append((done, total)))(texts, top_k=2)
    for a, b in zip(big, small):
        same_proposals(a, b)
    assert len(seen) > 3 and seen[-1] == (20, 20)


def test_bfloat16_and_int8_stay_close(dirs):
    text = "The cat [MASK] on the mat."
    ref = pipeline("fill-mask", dirs["mlm"])(text, top_k=50)
    for options in ({"dtype": "bfloat16"}, {"quantize": True}):
        got = pipeline("fill-mask", dirs["mlm"], **options)(text, top_k=5)
        assert got[0]["token"] in {p["token"] for p in ref}


def test_embed_and_similarity_match_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(MINILM), device="cpu")
    texts = ["The cat sits on the mat", "A feline rests on a rug", "Stocks crashed today"]
    embed = pipeline("embed", MINILM)
    ours, theirs = embed(texts), model.encode(texts, convert_to_tensor=True)
    assert (ours - theirs).abs().max().item() <= TOL
    similarity = pipeline("similarity", embed.model, embed.tokenizer)  # same weights, reused
    assert (similarity(texts) - theirs @ theirs.T).abs().max().item() <= TOL
    assert similarity(texts[0], texts[1]) > 0.5
    long = " ".join(texts * 16)  # > 256 tokens: windows by default, truncation on request
    cut = pipeline("embed", embed.model, embed.tokenizer, truncate=True)(long)
    assert (cut - model.encode(long, convert_to_tensor=True)).abs().max().item() <= TOL
    assert embed(long).shape == (384,) and abs(embed(long).norm().item() - 1) < 1e-5


def test_ner_keeps_words_whole_with_a_bpe_tokenizer(tmp_path):
    from unmask.checkpoints import save
    from unmask.config import preset
    from unmask.heads import TokenClassifier
    from unmask.tokenizer import Tokenizer

    corpus = ["Sarah Johnson lives in Berlin and works at Siemens near Alexanderplatz."] * 20
    tok = Tokenizer.train_from_iterator(corpus, kind="bpe", vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    model = TokenClassifier(preset("tiny", vocab_size=tok.vocab_size, num_layers=1),
                            num_labels=5, id2label=dict(enumerate(labels)))
    with torch.no_grad():
        model.head.out.weight.mul_(50)  # decisive, varied labels from random weights
    save(model, tmp_path)
    tok.save(tmp_path)
    text = "Sarah Johnson-Smith lives in Alexanderplatz, Berlin."
    enc = tok.encode_batch([text], padding=False)
    spans: dict[int, list[int]] = {}  # word -> [start, end] from the tokenizer's word ids
    for w, (a, b) in zip(enc.word_ids[0], enc.offsets[0]):
        if w >= 0:
            spans.setdefault(w, [a, b])[1] = b
    starts, ends = {a for a, _ in spans.values()}, {b for _, b in spans.values()}
    ents = pipeline("ner", tmp_path)(text, aggregation="first", ignore_labels=())
    assert ents and ents[0]["start"] == 0 and ents[-1]["end"] == len(text)
    assert all(e["start"] in starts and e["end"] in ends for e in ents)
    assert all(e["word"] == text[e["start"]:e["end"]] for e in ents)
    tokens = pipeline("ner", tmp_path)(text, aggregation="none", ignore_labels=())
    assert len(tokens) > len(spans)  # BPE splits words into pieces; "first" kept them whole


def test_dtype_auto_is_exact_float32_on_cpu_and_bf16_warns_where_emulated(dirs, monkeypatch):
    import warnings

    from unmask.pipelines import base

    fill = pipeline("fill-mask", dirs["mlm"])
    assert fill.dtype == "float32" and fill.model.encoder.layout == "unpadded"
    assert base.resolve_dtype("auto", "cpu") == "float32"
    assert base.resolve_dtype("auto", "cpu", quantize=True) == "int8"
    monkeypatch.setattr(base, "fast_bf16", lambda device: False)
    monkeypatch.setattr(base, "_warned_bf16", set())
    with pytest.warns(RuntimeWarning, match="about 5x slower than float32"):
        base.resolve_dtype("bfloat16", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        base.resolve_dtype("bfloat16", "cpu")
    for kwargs, message in (({"dtype": "float16"}, "dtype must be one of"),
                            ({"dtype": "int8", "device": "cuda"}, "CPU only"),
                            ({"dtype": "bfloat16", "quantize": True}, "quantize=True means"),
                            ({"batch_tokens": 0}, "batch_tokens must be")):
        with pytest.raises(ValueError, match=message):
            pipeline("fill-mask", dirs["mlm"], **kwargs)


def test_numeric_options_are_checked(dirs):
    fill = pipeline("fill-mask", dirs["mlm"])
    assert len(fill("The [MASK] sat.", top_k=10**9)) == 30522  # capped, not a RuntimeError
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="top_k must be an int >= 1"):
            fill("The [MASK] sat.", top_k=bad)
    classify = pipeline("classify", dirs["classify"])
    assert len(classify("I loved it", top_k=10**9)) == 2
    with pytest.raises(ValueError, match="top_k"):
        classify("I loved it", top_k=0)
    with pytest.raises(ValueError, match="stride must be an int between 0 and 61"):
        pipeline("ner", dirs["ner"], stride=64)
    answer = pipeline("answer", dirs["qa"])
    for kwargs in ({"top_k": 0}, {"max_answer_len": 0}, {"doc_stride": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            answer("Where?", "In Berlin.", **kwargs)


def test_cpu_pipelines_fuse_linear_layers_and_stay_exact_and_trainable(dirs):
    from unmask.pipelines.base import FusedLinear, onednn_linear_works

    if not onednn_linear_works():
        pytest.skip("this torch has no oneDNN fused linear")
    from unmask.checkpoints import load

    model = load(dirs["classify"], task="sequence_classification")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    text = "I loved this film, every minute of it."
    theirs = hf("text-classification", dirs["classify"])(text, top_k=None)
    classify = pipeline("classify", dirs["classify"])
    mlp = classify.model.encoder.layers[0].mlp
    assert isinstance(mlp.up, FusedLinear) and mlp.up.activation == classify.config.activation
    assert isinstance(classify.model.encoder.layers[0].attn.qkv, FusedLinear)
    ours = classify(text, top_k=None)
    assert {p["label"]: round(p["score"], 5) for p in ours} == pytest.approx(
        {p["label"]: round(p["score"], 5) for p in theirs}, abs=TOL)
    # A model passed in keeps its parameters (same keys, same values) and can still be trained.
    from unmask.tokenizer import Tokenizer

    pipeline("classify", model, Tokenizer.from_pretrained(dirs["classify"]))
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    ids = torch.tensor([[2, 5, 9, 3]])
    model.train()
    model(ids).logits.sum().backward()
    assert model.encoder.layers[0].mlp.up.weight.grad is not None
