"""The shape of the code: no module imports itself back through another (import-linter checks the
layers and which packages may use SQL, Slack and the terminal; see pyproject.toml)."""

from __future__ import annotations

import grimp


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("bot", "feedback", "retrieval")
    cycles = sorted(
        {tuple(sorted((module, imported)))
         for module in graph.modules
         for imported in graph.find_modules_directly_imported_by(module)
         if graph.find_shortest_chain(importer=imported, imported=module)}
    )
    assert cycles == []
