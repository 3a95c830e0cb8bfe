"""A Sphinx extension with the fixes the book needs from its toolchain.

1. sphinx-thebe 0.3.1 registers its configuration script twice under Sphinx 7.4, so
   every page declared ``const THEBE_JS_URL`` twice and the browser reported a
   SyntaxError. Repeated script entries are dropped, keeping the first.
2. docutils renders a bibliography as ``role="list"`` whose children carry
   ``role="doc-biblioentry"``; a list must contain list items, so screen readers (and
   axe's ``aria-required-children`` rule) reject it. The entries become list items.
3. An exercise master (``solutions/NN-slug.ipynb``) is also the source of the student
   notebook, so its heading says "Exercises: ..."; on the solution pages of the book the
   heading and the browser title say "Solutions: ..." instead.
"""


def _unique_scripts(context):
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        # A script given only as a body has filename None or "", depending on who added it.
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _accessible_bibliography(context):
    body = context.get("body")
    if body and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')


def _solutions_heading(pagename, context):
    if not pagename.startswith("solutions/"):
        return
    for key in ("body", "title", "pagetitle"):
        if context.get(key):
            context[key] = context[key].replace("Exercises: ", "Solutions: ", 1)


def _fix_page(app, pagename, templatename, context, doctree):
    _unique_scripts(context)
    _accessible_bibliography(context)
    _solutions_heading(pagename, context)


def setup(app):
    app.connect("html-page-context", _fix_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
