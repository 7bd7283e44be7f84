"""A tiny document model for the sweep report: headings, paragraphs, tables and images, rendered both as
markdown (PNGs beside it) and as one self-contained HTML page (PNGs embedded, viewable in the MLflow UI)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any


def fmt(v: Any) -> str:
    """Numbers to 4 significant digits, ``-`` for missing."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Doc:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple[str, Any]] = []
        self.figures: dict[str, float] = {}  # numbers a section computed, for the parent run's metrics

    def h(self, text: str) -> None:
        self.blocks.append(("h", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def img(self, file: str | Path, alt: str) -> None:
        self.blocks.append(("img", (Path(file).name, alt)))

    @property
    def images(self) -> list[str]:
        return [b[1][0] for b in self.blocks if b[0] == "img"]

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, b in self.blocks:
            if kind == "h":
                out += [f"## {b}", ""]
            elif kind == "p":
                out += [b, ""]
            elif kind == "table":
                header, rows = b
                cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("| " + " | ".join(cell(h) for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
                out.append("")
            else:
                out += [f"![{b[1]}]({b[0]})", ""]
        return "\n".join(out)

    def html(self, folder: Path) -> str:
        body = []
        for kind, b in self.blocks:
            if kind == "h":
                body.append(f"<h2>{html.escape(b)}</h2>")
            elif kind == "p":
                body.append(f"<p>{_inline(b)}</p>")
            elif kind == "table":
                header, rows = b
                th = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><tr>{th}</tr>{trs}</table>")
            else:
                data = base64.b64encode((folder / b[0]).read_bytes()).decode()
                body.append(f'<p><img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}"></p>')
        style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}"
                 "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}"
                 "img{max-width:100%}code{background:#f3f3f3;padding:0 3px}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(body)}</body></html>")


def _inline(text: str) -> str:
    """The two markdown marks the report's paragraphs use: `code` and **bold**."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
