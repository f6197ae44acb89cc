"""The configuration examples the README and docs/carriers.md show are valid as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from fulfil.core.cli import main

ROOT = Path(__file__).parents[1]


def toml_blocks(document: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", (ROOT / document).read_text(), re.S)


@pytest.mark.parametrize("document", ["README.md", "docs/carriers.md"])
def test_the_config_example_validates(document, tmp_path):
    example = toml_blocks(document)[0]
    if "[store]" not in example:  # a fragment: put it under the default config's store
        from fulfil.core.config import default_config_text

        base = default_config_text()
        base = re.sub(r"(?ms)^\[carriers\..*?(?=^\[(?!carriers)|\Z)", "", base)
        base = re.sub(r"(?ms)^\[\[routing\]\].*?(?=^\[(?!\[routing)|\Z)", "", base)
        example = base + "\n" + example
    path = tmp_path / "fulfil.toml"
    path.write_text(example)
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
