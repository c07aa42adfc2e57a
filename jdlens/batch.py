"""`jdlens batch`: score a whole dataset of JDs into two Parquet datasets (one row per JD, one per sentence).

The rows come from the same `Engine` and report code as `jdlens score`; this module only flattens reports
into table rows, reads the input as a stream, and writes the output in parts, so that a run holds one part
in memory at a time and a rerun skips the JD ids already written (resume). Bad rows (no id, no text, not
UTF-8, too long) go to `OUT/errors.jsonl` with their reason and the run goes on.

The Ray engine (`jdlens.batch_ray`) reuses `jd_row`, `sentence_rows` and `check_row` so both engines
produce the same rows.
"""

from __future__ import annotations

import csv
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jdlens.labels import FLAGS, ROLE_SPECIFIC, ROLES

MISTAKE_TYPES = ("mixed_roles", "phd_for_non_research", "buzzwords", "vague_seniority")
INPUT_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")
JDS, SENTENCES, ERRORS = "jds", "sentences", "errors.jsonl"
# Output column names the report owns; an input column with the same name is not carried through.
JD_COLUMNS = (
    "id",
    "role_type",
    *(f"share_{r}" for r in ROLE_SPECIFIC),
    "score",
    *(f"mistake_{m}" for m in MISTAKE_TYPES),
    "n_sentences",
    "truncated",
    "model_name",
    "model_version",
)


# ---------------------------------------------------------------- report -> rows (shared by both engines)


def jd_row(report: dict[str, Any], carry: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JD report -> its row in `OUT/jds` (input columns other than id/text are carried through)."""
    found = {m["type"] for m in report["mistakes"]}
    row: dict[str, Any] = {
        "id": str(report["id"]),
        "role_type": report["role_type"],
        **{f"share_{r}": float(report["role_shares"][r]) for r in ROLE_SPECIFIC},
        "score": int(report["score"]),
        **{f"mistake_{m}": m in found for m in MISTAKE_TYPES},
        "n_sentences": len(report["sentences"]),
        "truncated": bool(report.get("truncation")),
        "model_name": str(report["model"].get("name")),
        "model_version": None if report["model"].get("version") is None else str(report["model"]["version"]),
    }
    for k, v in (carry or {}).items():
        if k not in row and k != "text":
            row[k] = v
    return row


def sentence_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One JD report -> its rows in `OUT/sentences` (offsets into the JD text, not the text itself)."""
    return [
        {
            "jd_id": str(report["id"]),
            "index": int(s["index"]),
            "start": int(s["start"]),
            "end": int(s["end"]),
            "heading": bool(s["heading"]),
            "role": s["role"],
            **{f"role_score_{r}": float(s["role_scores"][r]) for r in ROLES},
            **{f"flag_{f}": f in s["flags"] for f in FLAGS},
            **{f"flag_score_{f}": float(s["flag_scores"][f]) for f in FLAGS},
        }
        for s in report["sentences"]
    ]


def check_row(row: dict[str, Any], max_chars: int) -> str | None:
    """Why a JD row cannot be scored, or None when it can."""
    jd_id, text = row.get("id"), row.get("text")
    if jd_id is None or str(jd_id).strip() == "":
        return "no id"
    if text is None or (isinstance(text, float) and text != text):  # None, or NaN from pandas/CSV
        return "no text"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return "text is not UTF-8"
    if not isinstance(text, str):
        return f"text is a {type(text).__name__}, not a string"
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # surrogate-escaped bytes: the file was not UTF-8
        return "text is not UTF-8"
    if not text.strip():
        return "no text"
    if len(text) > max_chars:
        return f"text is too long ({len(text)} characters; the limit is {max_chars})"
    return None


# ---------------------------------------------------------------- input: a stream of row chunks


def input_files(path: Path) -> list[Path]:
    """A file, or every Parquet/JSONL/CSV file under a folder (one dataset), in a stable order."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    bad = [p for p in files if p.suffix.lower() not in INPUT_SUFFIXES]
    if bad:
        raise ValueError(f"{bad[0]}: unsupported input (use {', '.join(INPUT_SUFFIXES)})")
    if not files:
        raise ValueError(f"{path}: no {', '.join(INPUT_SUFFIXES)} files in this folder")
    return files


def scan_ids(files: list[Path]) -> tuple[int, set[str]]:
    """One cheap pass over the ids (Parquet: the id column only): the row count for the progress bar's
    ETA, and the ids that occur more than once. Every row of a duplicated id is a bad row in both engines,
    so the result does not depend on which worker saw which row first."""
    from collections import Counter

    counts: Counter[str] = Counter()
    total = 0
    for f in files:
        if f.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(f)
            if "id" not in pf.schema_arrow.names:
                total += pf.metadata.num_rows
                continue
            for batch in pf.iter_batches(columns=["id"]):
                ids = batch.column("id").to_pylist()
                total += len(ids)
                counts.update(str(x) for x in ids if x is not None)
        else:
            for row in iter_rows([f]):
                total += 1
                if row.get("id") is not None:
                    counts[str(row["id"])] += 1
    return total, {k for k, v in counts.items() if v > 1}


def _rows_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path.name}:{no}"
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield {"_error": "line is not UTF-8", "_where": where}
                continue
            except json.JSONDecodeError as exc:
                yield {"_error": f"not JSON ({exc.msg})", "_where": where}
                continue
            if not isinstance(obj, dict):
                yield {"_error": "not a JSON object", "_where": where}
                continue
            yield {**obj, "_where": where}


def _rows_csv(path: Path) -> Iterator[dict[str, Any]]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row is reported, not the file.
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as fh:
        for no, row in enumerate(csv.DictReader(fh), 2):
            yield {**row, "_where": f"{path.name}:{no}"}


def _rows_parquet(path: Path, batch_size: int) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            n += 1
            yield {**row, "_where": f"{path.name}:row {n}"}


def iter_rows(files: list[Path], batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """Every input row, streamed file by file; never the whole dataset in memory."""
    for f in files:
        suffix = f.suffix.lower()
        if suffix == ".parquet":
            yield from _rows_parquet(f, batch_size)
        elif suffix == ".csv":
            yield from _rows_csv(f)
        else:
            yield from _rows_jsonl(f)


# ---------------------------------------------------------------- output: parts, resume, errors


def done_ids(out: Path) -> set[str]:
    """JD ids already in OUT (written parts) or already reported as bad: a rerun skips them."""
    ids: set[str] = set()
    jds = out / JDS
    if jds.is_dir() and any(jds.glob("*.parquet")):
        import pyarrow.parquet as pq

        for part in sorted(jds.glob("*.parquet")):
            ids.update(str(x) for x in pq.read_table(part, columns=["id"]).column("id").to_pylist())
    errors = out / ERRORS
    if errors.exists():
        for line in errors.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("id") is not None:
                    ids.add(str(rec["id"]))
    return ids


def _arrow_table(rows: list[dict[str, Any]], schema: Any = None) -> Any:
    import pyarrow as pa

    if schema is not None:
        return pa.Table.from_pylist(rows, schema=schema)
    table = pa.Table.from_pylist(rows)
    # A carried column that is all null in the first part would pin the type `null`: make it a string.
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


@dataclass
class PartWriter:
    """Writes `OUT/jds/part-*.parquet` and `OUT/sentences/part-*.parquet` in step.

    The sentences part is written first and the JD part last (each by rename), so an id counts as done only
    when both are on disk; a sentences part without its JD part (an interrupted run) is removed on start."""

    out: Path
    jd_schema: Any = None
    sent_schema: Any = None
    parts: int = 0
    # Unique per run (two runs in one second in one process must not overwrite each other's parts).
    run_tag: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        import pyarrow.parquet as pq

        (self.out / JDS).mkdir(parents=True, exist_ok=True)
        (self.out / SENTENCES).mkdir(parents=True, exist_ok=True)
        # Only this writer's `part-*` files pair up by name (Ray's parts are named by Ray).
        written = {p.name for p in (self.out / JDS).glob("part-*.parquet")}
        for orphan in (self.out / SENTENCES).glob("part-*.parquet"):
            if orphan.name not in written:
                orphan.unlink()
        for tmp in list((self.out / JDS).glob("*.tmp")) + list((self.out / SENTENCES).glob("*.tmp")):
            tmp.unlink()
        first = sorted(n for n in written if (self.out / SENTENCES / n).exists())
        if first:  # resume: keep the schema of what is already there
            self.jd_schema = pq.read_schema(self.out / JDS / first[0])
            self.sent_schema = pq.read_schema(self.out / SENTENCES / first[0])

    def write(self, jd_rows: list[dict[str, Any]], sent_rows: list[dict[str, Any]]) -> None:
        import pyarrow.parquet as pq

        if not jd_rows:
            return
        name = f"part-{self.run_tag}-{self.parts:05d}.parquet"
        self.parts += 1
        jd_table = _arrow_table(jd_rows, self.jd_schema)
        sent_table = _arrow_table(sent_rows, self.sent_schema)
        self.jd_schema, self.sent_schema = jd_table.schema, sent_table.schema
        for folder, table in ((SENTENCES, sent_table), (JDS, jd_table)):
            tmp = self.out / folder / (name + ".tmp")
            pq.write_table(table, tmp)
            tmp.rename(self.out / folder / name)


@dataclass
class BatchResult:
    scored: int
    sentences: int
    errors: int
    skipped: int
    seconds: float

    @property
    def jds_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds else 0.0


def run_local(
    inp: Path,
    out: Path,
    engine: Any,
    chunk_size: int = 64,
    part_size: int = 2048,
    max_chars: int = 100_000,
    progress: bool = True,
) -> BatchResult:
    """Score every JD in `inp` into `out` in-process; resumable, bounded memory (one part at a time)."""
    from tqdm import tqdm

    files = input_files(inp)
    out.mkdir(parents=True, exist_ok=True)
    skip = done_ids(out)
    writer = PartWriter(out)
    total, dups = scan_ids(files)
    bar = tqdm(total=total, unit="JD", desc="scoring", disable=not progress, file=sys.stderr, smoothing=0.1)
    start = time.perf_counter()
    scored = n_sent = n_err = skipped = 0
    jd_buf: list[dict[str, Any]] = []
    sent_buf: list[dict[str, Any]] = []
    chunk: list[dict[str, Any]] = []

    def score_chunk() -> None:
        nonlocal scored, n_sent
        if not chunk:
            return
        # Sorting the chunk by length keeps similar-length JDs (and so sentences) in the same model batches.
        chunk.sort(key=lambda r: len(r["text"]))
        reports = engine.score_many([r["text"] for r in chunk], [str(r["id"]) for r in chunk])
        for row, report in zip(chunk, reports, strict=True):
            carry = {k: v for k, v in row.items() if not k.startswith("_")}
            jd_buf.append(jd_row(report, carry))
            sents = sentence_rows(report)
            sent_buf.extend(sents)
            n_sent += len(sents)
        scored += len(chunk)
        bar.update(len(chunk))
        chunk.clear()

    with (out / ERRORS).open("a", encoding="utf-8") as errors:
        for row in iter_rows(files):
            reason = row.get("_error") or check_row(row, max_chars)
            jd_id = None if row.get("id") is None else str(row["id"])
            if reason is None and jd_id in skip:
                skipped += 1
                bar.update(1)
                continue
            if reason is None and jd_id in dups:
                reason = "duplicate id (more than one row has it)"
            if reason is not None:
                if jd_id is None or jd_id not in skip:  # a rerun does not report the same bad row twice
                    errors.write(json.dumps({"id": jd_id, "where": row.get("_where"), "reason": reason}) + "\n")
                    n_err += 1
                bar.update(1)
                continue
            if isinstance(row["text"], bytes):
                row["text"] = row["text"].decode("utf-8")
            chunk.append(row)
            if len(chunk) >= chunk_size:
                score_chunk()
                if len(jd_buf) >= part_size:
                    writer.write(jd_buf, sent_buf)
                    jd_buf, sent_buf = [], []
        score_chunk()
        writer.write(jd_buf, sent_buf)
    bar.close()
    return BatchResult(scored, n_sent, n_err, skipped, time.perf_counter() - start)


def read_output(out: Path) -> tuple[Any, Any]:
    """(jds, sentences) of a batch output as pandas DataFrames, sorted by id (and sentence index)."""
    import pyarrow.parquet as pq

    jds = pq.read_table(out / JDS).to_pandas().sort_values("id").reset_index(drop=True)
    sents = pq.read_table(out / SENTENCES).to_pandas().sort_values(["jd_id", "index"]).reset_index(drop=True)
    return jds, sents
