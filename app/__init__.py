"""The Gradio UI of the course: pages, widgets and event wiring only (no tensor maths here).

Importing this package first makes `import gradio` skip a developer's step that costs a third of the start-up's
imports: every component class Gradio defines (about 80, and our own in app/widgets.py) re-reads its source file,
parses it and renders a type stub through jinja2, only to write a `.pyi` file beside it for an editor's
autocompletion (`gradio.component_meta.create_or_modify_pyi`, called from `ComponentMeta.__new__`). The server
never reads those files. Measured on this 2-core machine: `import gradio` 3.0-3.5 s with the stubs, 1.7 s without
(python -X importtime; app.startup prints the start-up by phase). If gradio was imported before this package, only
the classes defined after it skip the stubs.
"""

import importlib.abc
import importlib.util
import sys

_STUBS = "gradio.component_meta"


def _no_stubs(module) -> None:
    module.create_or_modify_pyi = lambda component_class, class_name, events: None


class _WithoutStubs(importlib.abc.MetaPathFinder):
    """Finds gradio.component_meta as Python would, and replaces its stub writer once the module has run."""

    def find_spec(self, name, path, target=None):
        if name != _STUBS:
            return None
        sys.meta_path.remove(self)  # once: the normal finders below take it from here
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _no_stubs(module)

        spec.loader.exec_module = exec_module
        return spec


if _STUBS in sys.modules:
    _no_stubs(sys.modules[_STUBS])
else:
    sys.meta_path.insert(0, _WithoutStubs())
