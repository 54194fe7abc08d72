"""A toy Quarto book for the renderer tests: a prose-only index, one chapter, one appendix.

Small on purpose (two kernels, two tiny figures) so a full HTML + PDF render takes a few seconds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

QUARTO_YML = """\
project:
  type: book
  output-dir: _book
book:
  title: "Toy Book"
  author: "Test Author"
  output-file: toy-book
  chapters:
    - index.qmd
    - report/one.qmd
  appendices:
    - report/two.qmd
execute:
  echo: false
  warning: false
"""

INDEX = """\
---
title: "Preface"
---

A prose-only home page. The method is in @sec-method, the curve in @fig-sine, the table in @tbl-squares
and the identity in @eq-sum. Inline math: $\\sum_{i=0}^{n} \\binom{n}{i} = 2^n$.
"""

ONE = '''\
---
title: "First chapter"
---

```{python}
#| tags: [parameters]
seed = 0
mlp_lr = 0.001
```

## Method {#sec-method}

The learning rate is `{python} mlp_lr` and the seed is `{python} seed`.

$$ \\sum_{i=0}^{n} \\binom{n}{i} = 2^n $$ {#eq-sum}

```{python}
#| label: fig-sine
#| fig-cap: "A sine wave, shifted by the *seed*."
import numpy as np
import matplotlib.pyplot as plt
phase = np.linspace(0, 6, 50)
plt.figure(figsize=(4, 2.5))
plt.plot(phase, np.sin(phase + seed))
plt.xlabel("phase (rad)")
plt.show()
```

### Numbers {#sec-numbers}

```{python}
#| label: tbl-squares
#| tbl-cap: "Small squares."
import pandas as pd
pd.DataFrame({"n": [1, 2, 3], "square": [1, 4, 9]})
```

```{python}
#| echo: true
#| code-fold: true
import sys
print("visible stdout line")
print("hidden stderr line", file=sys.stderr)
```
'''

TWO = '''\
# Reproducibility {#sec-repro}

```{python}
#| tags: [parameters]
seed = 0
```

Back to @fig-sine in @sec-method, @tbl-squares, and @eq-sum; number only: [-@fig-sine].

::: {#fig-line}
```{python}
import matplotlib.pyplot as plt
plt.figure(figsize=(3, 2))
plt.plot([0, 1, 2], [seed, 1, 0])
plt.show()
```

A caption computed in the kernel: seed `{python} seed`.
:::

```{python}
import os
from IPython.display import Markdown
Markdown(f"Built with **{os.environ['EX4_RENDERER']}**; see @fig-line.")
```
'''


def write_toy_book(root: Path, extra: dict[str, str] | None = None) -> Path:
    """Write the toy book under `root` (files in `extra` replace or add chapters by relative path)."""
    files = {"_quarto.yml": QUARTO_YML, "index.qmd": INDEX, "report/one.qmd": ONE, "report/two.qmd": TWO}
    files.update(extra or {})
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def tree_digest(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to compare a folder before and after."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
