"""A Sphinx extension with one fix the book needs from its toolchain.

sphinx-thebe 0.3.1 registers its configuration script twice under Sphinx 7.4, so every
page declares ``const THEBE_JS_URL`` twice and the browser reports a SyntaxError. This
drops repeated script entries from each page, keeping the first.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
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


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
