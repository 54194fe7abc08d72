"""Find numbers typed by hand into chapter prose, where they would go stale when the data or parameters change.

Every number the report states must come from the kernel (inline `` `{python} …` `` or generated Markdown).
Ignored: front matter, code (cells, fenced blocks, inline code), math, labels and references, link targets,
HTML tags and comments, list markers. Allowed: years, section numbers after a word such as "Section",
and the number at the start of a heading. Figure and table captions given as cell options are prose and
are checked too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CAPTION_OPTION = re.compile(r"^(\s*#\|\s*(?:fig-cap|tbl-cap|fig-subcap|fig-alt)\s*:)(.*)$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SECTION_WORDS = re.compile(
    r"(?:sections?|§|chapters?|exercises?|questions?|parts?|tasks?|appendix|appendices|steps?)\s*"
    r"(?:\d+(?:\.\d+)*\s*(?:,|and|or|&|–|-|to)\s*)*$", re.IGNORECASE)
_HEADING_NUMBER = re.compile(r"^\s{0,3}#{1,6}\s+$")
_MASKS = [
    re.compile(r"<!--.*?-->", re.S),                    # HTML comments
    re.compile(r"\$\$.*?\$\$", re.S),                   # display math
    re.compile(r"\\\[.*?\\\]|\\\(.*?\\\)", re.S),       # \[ \] and \( \) math
    re.compile(r"(`+)(?:(?!\1).)+?\1", re.S),           # inline code, including `{python} expr`
    re.compile(r"(?<![\\$\w])\$(?=\S)[^$\n]+?(?<=\S)\$(?!\d)"),  # inline math
    re.compile(r"\{[#.=][^}]*\}|\{[^{}\n]*=[^{}\n]*\}"),  # attributes {#id .class key=value}
    re.compile(r"\[-?@[^\]]*\]|-?@[\w:.\-]+"),          # references and citations
    re.compile(r"\]\([^)]*\)"),                         # link and image targets
    re.compile(r"<https?://[^>]*>|https?://\S+"),       # autolinks and bare URLs
    re.compile(r"</?[A-Za-z][^>\n]*>"),                  # HTML tags
    re.compile(r"\[\^[^\]]*\]"),                        # footnote markers
    re.compile(r"^\s*\d+[.)](?=\s)", re.M),             # ordered-list markers
]


@dataclass(frozen=True)
class TypedNumber:
    path: str
    line: int
    column: int
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: hand-typed number '{self.number}' in: {self.context}"


def find_typed_numbers(text: str, path: str = "<text>") -> list[TypedNumber]:
    """Every number left in the prose of a .qmd text once the ignored parts are blanked out."""
    original_lines = text.splitlines()
    prose = _prose_only(text)
    findings = []
    for line_number, line in enumerate(prose.splitlines(), start=1):
        for match in _NUMBER.finditer(line):
            if _allowed(line, match):
                continue
            context = " ".join(original_lines[line_number - 1].split())[:120]
            findings.append(TypedNumber(path, line_number, match.start() + 1, match.group(), context))
    return findings


def find_typed_numbers_in_file(path: Path | str) -> list[TypedNumber]:
    path = Path(path)
    return find_typed_numbers(path.read_text(encoding="utf-8"), str(path))


def _blank(text: str) -> str:
    """Same length and line breaks, no content: positions in the prose stay those of the source."""
    return re.sub(r"[^\n]", " ", text)


def _prose_only(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    if lines and lines[0].strip() == "---":  # front matter
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                out.extend("" for _ in range(end + 1))
                index = end + 1
                break
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            out.append(lines[index])
            index += 1
            continue
        marker = fence.group(1)
        end = index + 1
        while end < len(lines) and not (lines[end].strip().startswith(marker[0] * len(marker))
                                        and set(lines[end].strip()) == {marker[0]}):
            end += 1
        out.append("")
        for inner in lines[index + 1:end]:
            caption = _CAPTION_OPTION.match(inner)  # captions are prose even inside a cell
            out.append(_blank(caption.group(1)) + caption.group(2) if caption else "")
        if end < len(lines):
            out.append("")
        index = end + 1
    prose = "\n".join(out)
    for mask in _MASKS:
        prose = mask.sub(lambda match: _blank(match.group()), prose)
    return prose


def _allowed(line: str, match: re.Match) -> bool:
    number, start, end = match.group(), match.start(), match.end()
    before, after = line[:start], line[end:]
    if before[-1:].isalnum() or before[-1:] in ("_", "."):
        return True  # part of a name: ResNet18, float32, L2, v1.2
    if before[-1:] == "-" and before[-2:-1].isalpha():
        return True  # CIFAR-10, ImageNet-1k
    if after[:1].isalpha() or after[:1] == "_":
        return after[:1] == "D" and not after[1:2].isalpha()  # 2D / 3D are names; 1st, 3x3, 10k are numbers
    if re.fullmatch(r"(19|20)\d\d", number):
        return True  # a year
    if _SECTION_WORDS.search(before):
        return True  # "Section 6.1", "Sections 6.1 and 6.2"
    if _HEADING_NUMBER.match(before) and re.fullmatch(r"\d+(\.\d+)*", number):
        return True  # "## 6.1 Learning rates"
    return False
