"""``modelops serve``: the HTTP service; ``modelops predict``: label texts from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from modelops.config.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="answer prediction requests over HTTP (docs/serving.md)",
        description="Serve every recipe's serving adapter over HTTP, many adapters on one "
        "copy of each base; promotions and rollbacks are picked up without a restart.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=_positive, default=8080)
    serve.add_argument(
        "--recipe", action="append", default=[], metavar="R",
        help="serve only this recipe (repeatable; default every recipe)",
    )  # fmt: skip
    serve.add_argument(
        "--token-file", type=Path,
        help="file holding the bearer token (default: MODELOPS_SERVE_TOKEN); "
        "required to bind beyond loopback",
    )  # fmt: skip
    serve.add_argument(
        "--public-name", action="append", default=[], metavar="HOST",
        help="without a token, a host name (besides loopback) that requests may name in "
        "their Host header (repeatable; default: MODELOPS_SERVE_PUBLIC_NAME, comma separated)",
    )  # fmt: skip
    serve.add_argument("--poll", type=float, default=2.0, help="registry check period, seconds")
    serve.add_argument(
        "--max-batch", type=_positive, default=64, help="texts gathered from queued requests"
    )
    serve.add_argument(
        "--score-batch", type=_positive, default=32,
        help="texts per forward pass (length-sorted chunks of a gathered batch)",
    )  # fmt: skip
    serve.add_argument(
        "--max-wait-ms", type=float, default=2.0,
        help="how long a batch waits for a request that is on its way",
    )  # fmt: skip
    serve.add_argument(
        "--max-queue", type=_positive, default=128,
        help="requests that may wait to be scored; more are answered 503 with Retry-After",
    )  # fmt: skip
    serve.add_argument(
        "--max-concurrency", type=_positive, default=512,
        help="connections and requests in flight; more are answered 503 (uvicorn's limit)",
    )  # fmt: skip
    serve.add_argument("--max-texts", type=_positive, default=256, help="texts per request")
    serve.add_argument("--max-chars", type=_positive, default=2000, help="characters per text")
    serve.add_argument(
        "--max-body-bytes", type=_positive, default=4 * 1024 * 1024,
        help="bytes per request body; a larger one is answered 413 unread",
    )  # fmt: skip
    serve.add_argument(
        "--redact", action="store_true", help="log texts' sha256 and length only, not the text"
    )
    serve.set_defaults(func=run_serve)

    predict = subparsers.add_parser(
        "predict", help="label texts with a recipe's serving adapter and print the results"
    )
    predict.add_argument("--recipe", required=True, metavar="R")
    predict.add_argument("texts", nargs="*", metavar="TEXT")
    predict.add_argument("--file", type=Path, help="a CSV file with a text column")
    predict.add_argument("--text-column", default="text")
    predict.add_argument("--top-k", type=_positive, default=3)
    predict.add_argument("--json", action="store_true", help="print one JSON document")
    predict.add_argument(
        "--log", action="store_true", help="also write the predictions to the production log"
    )
    predict.set_defaults(func=run_predict)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _token(args: argparse.Namespace, env_token: str | None) -> str | None:
    if args.token_file is None:
        return env_token
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(args.token_file, None, f"cannot read the token: {exc}") from None
    if not token:
        raise InputError(args.token_file, None, "the token file is empty")
    return token


def _public_names(args: argparse.Namespace) -> frozenset[str]:
    """``--public-name`` values, else ``MODELOPS_SERVE_PUBLIC_NAME`` (comma separated)."""
    import os

    from modelops.serving.auth import public_names

    given = args.public_name or [os.environ.get("MODELOPS_SERVE_PUBLIC_NAME", "")]
    return public_names(given)


def serve_app(platform, config, token: str | None, public_names=()):
    """The app ``modelops serve`` runs: the prediction API over ``platform`` and the stored
    drift reports linked from the Dagster UI (``MODELOPS_SERVE_URL`` + ``/reports/...``),
    behind the same gate as the API (token, or Host check without one), since reports
    hold production texts."""
    from modelops.serving.app import build_app
    from modelops.serving.reports import report_routes
    from modelops.serving.service import ServingService

    service = ServingService(platform, config)
    return build_app(
        service,
        token=token,
        public_names=public_names,
        extra_routes=report_routes(platform.store),
    )


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from modelops.config.settings import Settings
    from modelops.lifecycle.platform import Platform
    from modelops.serving.auth import RequestIdFilter, check_binding
    from modelops.serving.schemas import Limits
    from modelops.serving.service import ServeConfig

    settings = Settings.from_env()
    token = _token(args, settings.serve_token)
    check_binding(args.host, token)
    names = _public_names(args)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = ServeConfig(
        recipes=tuple(args.recipe),
        poll_s=args.poll,
        max_batch=args.max_batch,
        score_batch=args.score_batch,
        max_wait_s=args.max_wait_ms / 1000,
        max_queue=args.max_queue,
        limits=Limits(
            max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes
        ),
        redact_text=args.redact,
    )
    import torch

    torch.set_num_threads(settings.torch_threads)
    app = serve_app(Platform.from_settings(settings), config, token, names)
    if token:
        auth = "bearer token required"
    else:
        auth = "no token: Host must name loopback" + "".join(f" or {n}" for n in sorted(names))
    print(f"modelops serve: http://{args.host}:{args.port} ({auth})", file=sys.stderr)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        limit_concurrency=args.max_concurrency,
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from modelops.config.settings import Settings
    from modelops.lifecycle.platform import Platform
    from modelops.serving.predictor import Predictor

    texts = list(args.texts)
    if args.file is not None:
        texts += _file_texts(args.file, args.text_column)
    if not texts:
        raise InputError(None, "TEXT", "give texts as arguments or --file")
    settings = Settings.from_env()
    platform = Platform.from_settings(settings)
    try:
        log = platform.production_log if args.log else None
        predictor = Predictor(platform, args.recipe, log=log, top_k=args.top_k)
        predictions = predictor.predict(texts, source="cli")
    finally:
        platform.registry.close()
    rows = [
        {"text": t, "label": p.label, "confidence": p.confidence, "top_k": p.top_k,
         "oos_score": p.oos_score, "out_of_scope": p.out_of_scope,
         "adapter_id": p.adapter_id, "prediction_id": p.prediction_id}
        for t, p in zip(texts, predictions, strict=True)
    ]  # fmt: skip
    if args.json:
        adapter = predictor.adapter
        doc = {
            "recipe": args.recipe,
            "adapter_id": adapter.id,
            "taxonomy_version": adapter.taxonomy_version,
            "base_model": adapter.base_model,
            "predictions": rows,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        others = ", ".join(f"{t['label']} {t['p']:.3f}" for t in row["top_k"][1:])
        print(f"{row['label']}\t{row['confidence']:.3f}{_oos_text(row)}\t{row['text']}")
        if others:
            print(f"\t(then {others})")
    print(f"(adapter {predictor.adapter.id}, {predictor.adapter.base_model})", file=sys.stderr)
    return 0


def _oos_text(row: dict) -> str:
    """The out-of-scope column of a plain-text row: nothing without a score."""
    if row["oos_score"] is None:
        return ""
    return f"\toos {row['oos_score']:.3f}" + (" OUT OF SCOPE" if row["out_of_scope"] else "")


def _file_texts(path: Path, column: str) -> list[str]:
    import io

    import pandas as pd

    from modelops.domain.text import decode_text

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        frame = pd.read_csv(io.StringIO(decode_text(str(path), data)), dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, None, f"not a readable CSV file: {exc}") from None
    if column not in frame.columns:
        raise InputError(path, f"column {column!r}", f"missing (columns: {list(frame.columns)})")
    values = frame[column].tolist()
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise InputError(path, f"row {i + 2}", f"{column!r} is empty")
    return values
