"""Generate the man page and shell completions from the live `gsvc` command tree.

Why: documentation written by hand drifts from the code. Everything here is derived from the Typer
app in gsvc_cli/cli.py (every registered subcommand, option, default and help text), the outputs are
committed, and tests/test_man.py and tests/test_completions.py fail when they are stale.

Regenerate after changing any command (from the repository root):

    python -m gsvc_cli.docs_gen            # rewrite man/gsvc.1 and completions/*
    python -m gsvc_cli.docs_gen --check    # exit 1 and name the stale files, write nothing

Conventions for command authors (the docstring of the command function is its help text):
- The first paragraph is the one-line summary; later paragraphs are the description. Rich markup
  such as [bold]...[/bold] is allowed and is stripped in the man page.
- End the help with an "Examples:" paragraph, one complete example command per line, optionally
  followed by two spaces, "#" and a short explanation:

      Examples:
        gsvc encode in.y4m -o out.gsvc --bpp 0.4
        gsvc encode in.y4m -o out.gsvc --psnr 35  # aim for a quality instead of a size

  The examples appear in `gsvc <command> --help` as written and in the man page's EXAMPLES.
- Options taking a file should be typed pathlib.Path (completed as files); Enums and Literal
  choices are completed from their values; every other value gets no completion.

The output is deterministic: no dates, the version is the package version, and commands are listed
in the order the app lists them. The completion scripts are static (no Python runs on <Tab>):
starting gsvc imports torch, which takes seconds, and Typer's runtime completion is disabled in
cli.py (add_completion=False).
"""

from __future__ import annotations

import argparse
import enum
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

REPO_ROOT = Path(__file__).resolve().parents[1]
REGENERATE_COMMAND = "python -m gsvc_cli.docs_gen"
PROG = "gsvc"

# Output files, relative to the repository root.
MAN_PATH = Path("man/gsvc.1")
BASH_PATH = Path("completions/gsvc.bash")
ZSH_PATH = Path("completions/_gsvc")
FISH_PATH = Path("completions/gsvc.fish")

EXIT_STATUS = (
    ("0", "Success."),
    ("1", "Runtime error: a missing, unreadable or corrupt input, a failed write, or an internal "
          "error. The message names the file and the problem."),
    ("2", "Usage error: an unknown command or option, a bad option value, or an output file that "
          "exists while overwriting is refused."),
    ("130", "Interrupted (Ctrl-C)."),
)
ENVIRONMENT = (
    ("GSVC_DEBUG", "When set to anything but empty or 0, errors print a full Python traceback "
                   "instead of one line (the same as the --debug option)."),
    ("GSVC_RENDER_BACKEND", "Forces the splat rasteriser backend instead of choosing one "
                            "automatically: cpu (the C++ kernels), cuda (the CUDA kernels) or "
                            "reference (plain PyTorch, slow, for checking)."),
)
SEE_ALSO = ("ffmpeg(1)", "x265(1)")


# ---------------------------------------------------------------------------------------------
# The command tree as plain data
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamDoc:
    """One option or positional argument, with everything the outputs need."""

    is_option: bool
    name: str  # the Python name; for arguments also the placeholder shown to users
    flags: tuple[str, ...]  # option spellings, e.g. ("-o", "--output"); empty for arguments
    negative_flags: tuple[str, ...]  # the "off" spellings of a --x/--no-x pair
    metavar: str | None  # placeholder for the value; None when the option takes no value
    help: str
    default: str | None  # as shown to users; None when there is nothing worth showing
    required: bool
    repeatable: bool
    choices: tuple[str, ...]
    completion: str  # "file", "dir", "choice" or "none"


@dataclass(frozen=True)
class CommandDoc:
    """One command (the root `gsvc` or a subcommand)."""

    path: str  # "gsvc" or "gsvc encode"
    name: str
    summary: str
    description: tuple[str, ...]  # paragraphs, markup stripped, lines joined
    examples: tuple[tuple[str, str], ...]  # (command, explanation)
    params: tuple[ParamDoc, ...]
    subcommands: tuple[CommandDoc, ...] = field(default=())
    is_group: bool = False  # takes a COMMAND (even before any subcommand is registered)

    @property
    def options(self) -> tuple[ParamDoc, ...]:
        return tuple(p for p in self.params if p.is_option)

    @property
    def arguments(self) -> tuple[ParamDoc, ...]:
        return tuple(p for p in self.params if not p.is_option)


def strip_markup(text: str) -> str:
    """Rich markup to plain text ("[bold]x[/bold]" -> "x"); text without markup is unchanged."""
    try:
        return Text.from_markup(text).plain
    except Exception:  # malformed markup: show it as written rather than fail the build
        return text


def split_help(help_text: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Split a command's help into (summary, description paragraphs, examples).

    Paragraphs are separated by blank lines; a paragraph whose first line is "Examples:" holds one
    example command per line (see the module docstring).
    """
    text = inspect.cleandoc(help_text or "").replace("\b", "")
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    summary, description, examples = "", [], []
    for index, paragraph in enumerate(paragraphs):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if lines[0].rstrip(":").lower() == "examples":
            for line in lines[1:]:
                command, _, explanation = line.partition("  #")
                examples.append((strip_markup(command.strip()), strip_markup(explanation.strip())))
            continue
        joined = strip_markup(" ".join(lines))
        if index == 0:
            summary = joined
        else:
            description.append(joined)
    return summary, tuple(description), tuple(examples)


def _choice_text(value: Any) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _completion_of(param: Any) -> tuple[str, tuple[str, ...]]:
    """How a parameter's value is completed: ("choice", values), ("file"|"dir"|"none", ())."""
    descriptor = getattr(param, "type_descriptor", None)  # Typer's own parameter classes
    if descriptor is not None:
        if descriptor.is_choice:
            return "choice", tuple(_choice_text(c) for c in descriptor.choices or ())
        if descriptor.is_file:
            return "file", ()
        if descriptor.is_path:
            return ("dir" if descriptor.path_type == "dir" else "file"), ()
        return "none", ()
    param_type = getattr(param, "type", None)  # plain click parameters
    if param_type is not None and hasattr(param_type, "choices"):
        return "choice", tuple(_choice_text(c) for c in param_type.choices)
    type_name = type(param_type).__name__
    if type_name in ("Path", "File"):
        only_dirs = getattr(param_type, "dir_okay", False) and not getattr(param_type, "file_okay", True)
        return ("dir" if only_dirs else "file"), ()
    return "none", ()


def _spellings(names: Sequence[str]) -> tuple[str, ...]:
    """Short spellings first, then long, each sorted: Typer's order of help_option_names depends on
    the interpreter's hash seed, and the outputs must not."""
    return tuple(sorted(names, key=lambda name: (name.startswith("--"), name)))


def _default_text(param: Any, ctx: Any, takes_value: bool) -> str | None:
    """The default as a user would type it, or None when showing it would say nothing."""
    show_default = getattr(param, "show_default", None)
    if isinstance(show_default, str):
        return show_default
    if show_default is False or param.required:
        return None
    resilient = ctx.resilient_parsing
    ctx.resilient_parsing = True
    try:
        value = param.get_default(ctx, call=False)
    finally:
        ctx.resilient_parsing = resilient
    if value is None:
        return None
    if callable(value):
        return "(dynamic)"
    if isinstance(value, list | tuple):
        return ", ".join(_choice_text(v) for v in value) or None
    if isinstance(value, bool) and not takes_value:
        if param.secondary_opts:
            return _spellings(param.opts if value else param.secondary_opts)[-1]
        return None if not value else "on"
    if getattr(param, "count", False) and value == 0:
        return None
    return _choice_text(value)


def _metavar(param: Any, ctx: Any, completion: str, choices: tuple[str, ...]) -> str:
    if param.metavar:
        return str(param.metavar)
    if completion == "choice":
        return "{" + "|".join(choices) + "}"
    if completion in ("file", "dir"):
        return "DIR" if completion == "dir" else "PATH"
    display = getattr(param, "display_type", None)
    if callable(display):
        return display(ctx).strip("<>").removesuffix(" range").upper()
    return (param.name or "value").upper()


def _param_doc(param: Any, ctx: Any) -> ParamDoc:
    is_option = param.param_type_name == "option"
    takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    completion, choices = _completion_of(param) if takes_value else ("none", ())
    if is_option:
        flags = _spellings(param.opts)
        negative = _spellings(param.secondary_opts)
        metavar = _metavar(param, ctx, completion, choices) if takes_value else None
    else:
        flags, negative = (), ()
        metavar = str(param.metavar or param.name or "arg").upper()
    return ParamDoc(
        is_option=is_option,
        name=param.name or "",
        flags=flags,
        negative_flags=negative,
        metavar=metavar,
        help=strip_markup(" ".join((getattr(param, "help", None) or "").split())),
        default=_default_text(param, ctx, takes_value),
        required=bool(param.required),
        repeatable=bool(getattr(param, "multiple", False) or getattr(param, "count", False)
                        or (not is_option and param.nargs == -1)),
        choices=choices,
        completion=completion,
    )


def _command_doc(command: Any, ctx: Any, path: str) -> CommandDoc:
    summary, description, examples = split_help(command.help or "")
    if not summary:
        summary = strip_markup(command.short_help or "")
    params = tuple(_param_doc(p, ctx) for p in command.get_params(ctx) if not getattr(p, "hidden", False))
    subcommands: list[CommandDoc] = []
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
            subcommands.append(_command_doc(sub, sub_ctx, f"{path} {name}"))
    return CommandDoc(path=path, name=path.split()[-1], summary=summary, description=description,
                      examples=examples, params=params, subcommands=tuple(subcommands),
                      is_group=hasattr(command, "list_commands"))


def describe_app(app: typer.Typer, prog: str = PROG) -> CommandDoc:
    """Walk the click command behind a Typer app into a CommandDoc tree."""
    root = typer.main.get_command(app)
    ctx = root.make_context(prog, [], resilient_parsing=True)  # applies the app's context_settings
    doc = _command_doc(root, ctx, prog)
    nested = [sub.path for sub in doc.subcommands if sub.subcommands]
    if nested:
        raise NotImplementedError(f"docs_gen handles one level of subcommands; nested groups: {nested}")
    return doc


# ---------------------------------------------------------------------------------------------
# Man page (roff, man macros)
# ---------------------------------------------------------------------------------------------

def roff_escape(text: str) -> str:
    """Escape text for roff: backslashes, minus signs, and control characters at line start."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = text.split("\n")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in lines)


def roff_text(text: str, width: int = 72) -> list[str]:
    """Prose as roff input lines: wrapped (mandoc lint wants short input lines) and escaped."""
    wrapped = textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)
    return [roff_escape(line) for line in wrapped] or [""]


def _roff_flags(param: ParamDoc) -> str:
    spellings = [*param.flags, *param.negative_flags]
    text = ", ".join(f"\\fB{roff_escape(s)}\\fR" for s in spellings)
    if param.metavar:
        text += f" \\fI{roff_escape(param.metavar)}\\fR"
    return text


def _roff_param(param: ParamDoc) -> list[str]:
    head = _roff_flags(param) if param.is_option else f"\\fI{roff_escape(param.metavar or '')}\\fR"
    body = param.help or "(no description)"
    notes = []
    if param.required:
        notes.append("required")
    if param.repeatable:
        notes.append("may be repeated")
    if param.default is not None:
        notes.append(f"default: {param.default}")
    if notes:
        body = f"{body} [{'; '.join(notes)}]"
    return [".TP", head, *roff_text(body)]


def _roff_synopsis(command: CommandDoc) -> list[str]:
    words = command.path.split()
    parts = [f"\\fB{roff_escape(w)}\\fR" for w in words]
    if command.options:
        parts.append("[\\fIOPTIONS\\fR]")
    for argument in command.arguments:
        placeholder = f"\\fI{roff_escape(argument.metavar or '')}\\fR"
        placeholder += "..." if argument.repeatable else ""
        parts.append(placeholder if argument.required else f"[{placeholder}]")
    if command.is_group:
        parts.append("\\fICOMMAND\\fR [\\fIARGS\\fR]...")
    return [".nf", " ".join(parts), ".fi"]


def render_man(root: CommandDoc, version: str) -> str:
    """The whole man page for `root` as roff text."""
    out: list[str] = [
        f'.\\" Generated by "{REGENERATE_COMMAND}" from the gsvc command tree. Do not edit.',
        f'.TH GSVC 1 "" "gsvc {roff_escape(version)}" "User Commands"',
        ".SH NAME",
        f"gsvc \\- {roff_escape(root.summary[:1].lower() + root.summary[1:].rstrip('.'))}",
        ".SH SYNOPSIS",
        ".nf",
        *(_roff_synopsis(c)[1] for c in (root, *root.subcommands)),
        ".fi",
        ".SH DESCRIPTION",
        *roff_text(root.summary),
    ]
    for paragraph in root.description:
        out += [".PP", *roff_text(paragraph)]
    out += [".PP", "Run \\fBgsvc\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR for a command's options."]
    out += [".SH OPTIONS"]
    for param in root.options:
        out += _roff_param(param)
    out += [".SH COMMANDS"]
    if not root.subcommands:
        out += ["No subcommands are registered in this version."]
    for sub in root.subcommands:
        out += [f'.SS "{roff_escape(sub.path)}"', *_roff_synopsis(sub), ".PP", *roff_text(sub.summary)]
        for paragraph in sub.description:
            out += [".PP", *roff_text(paragraph)]
        if sub.arguments:
            out += [".PP", "Arguments:", ".RS"]
            for param in sub.arguments:
                out += _roff_param(param)
            out += [".RE"]
        if sub.options:
            out += [".PP", "Options:", ".RS"]
            for param in sub.options:
                out += _roff_param(param)
            out += [".RE"]
    out += [".SH EXIT STATUS"]
    for code, meaning in EXIT_STATUS:
        out += [".TP", f"\\fB{code}\\fR", *roff_text(meaning)]
    out += [".SH ENVIRONMENT"]
    for name, meaning in ENVIRONMENT:
        out += [".TP", f"\\fB{name}\\fR", *roff_text(meaning)]
    out += [".SH EXAMPLES"]
    examples = [e for c in (root, *root.subcommands) for e in c.examples]
    if not examples:
        out += ["Print the version:", ".PP", ".RS", ".nf", "gsvc \\-\\-version", ".fi", ".RE"]
    for index, (command, explanation) in enumerate(examples):
        out += [] if index == 0 else [".PP"]
        out += roff_text(explanation) if explanation else []
        out += [".RS", ".nf", roff_escape(command), ".fi", ".RE"]
    out += [".SH SEE ALSO", ", ".join(f"\\fB{roff_escape(s.split('(')[0])}\\fR({s.split('(')[1]}"
                                       for s in SEE_ALSO)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Shell completions (static scripts)
# ---------------------------------------------------------------------------------------------

def _value_options(command: CommandDoc) -> list[ParamDoc]:
    return [p for p in command.options if p.metavar is not None]


def _argument_completion(command: CommandDoc) -> ParamDoc | None:
    """The positional argument whose completion applies to bare words (the first one)."""
    return command.arguments[0] if command.arguments else None


def _bash_compgen(param: ParamDoc | None) -> str:
    if param is None or param.completion == "none":
        return "COMPREPLY=()"
    if param.completion == "choice":
        return f'COMPREPLY=($(compgen -W "{" ".join(param.choices)}" -- "$cur"))'
    flag = "-d" if param.completion == "dir" else "-f"
    return f'COMPREPLY=($(compgen {flag} -- "$cur"))'


def _bash_command_case(command: CommandDoc, indent: str) -> list[str]:
    lines = []
    if _value_options(command):
        lines.append(f'{indent}case "$prev" in')
        for param in _value_options(command):
            pattern = "|".join(param.flags)
            lines.append(f"{indent}    {pattern}) {_bash_compgen(param)}; return 0 ;;")
        lines.append(f"{indent}esac")
    all_flags = " ".join(s for p in command.options for s in (*p.flags, *p.negative_flags))
    words = " ".join(s.name for s in command.subcommands)
    lines += [
        f'{indent}if [[ "$cur" == -* ]]; then',
        f'{indent}    COMPREPLY=($(compgen -W "{all_flags}" -- "$cur"))',
    ]
    if command.subcommands:
        lines += [f"{indent}else", f'{indent}    COMPREPLY=($(compgen -W "{words}" -- "$cur"))']
    else:
        lines += [f"{indent}else", f"{indent}    {_bash_compgen(_argument_completion(command))}"]
    lines.append(f"{indent}fi")
    return lines


def render_bash(root: CommandDoc) -> str:
    """A bash completion script: `source` it, or drop it into bash-completion's directory."""
    root_value_flags = "|".join(f for p in _value_options(root) for f in p.flags)
    out = [
        f"# bash completion for gsvc. Generated by \"{REGENERATE_COMMAND}\"; do not edit.",
        "_gsvc() {",
        "    local cur prev cmd i",
        '    cur="${COMP_WORDS[COMP_CWORD]}"',
        '    prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    cmd=""',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
    ]
    if root_value_flags:
        out.append(f"            {root_value_flags}) ((i++)) ;;")
    out += [
        "            -*) ;;",
        '            *) cmd="${COMP_WORDS[i]}"; break ;;',
        "        esac",
        "    done",
        '    case "$cmd" in',
        '        "")',
        *_bash_command_case(root, " " * 12),
        "            ;;",
    ]
    for sub in root.subcommands:
        out += [f"        {sub.name})", *_bash_command_case(sub, " " * 12), "            ;;"]
    out += [
        "    esac",
        "    return 0",
        "}",
        "complete -o filenames -F _gsvc gsvc",
    ]
    return "\n".join(out) + "\n"


def first_sentence(text: str) -> str:
    """The first sentence, without its full stop: completion menus have room for one line."""
    first = re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0]
    return first[:-1] if first.endswith(".") and not first.endswith("..") else first


def _zsh_quote(text: str) -> str:
    """Text inside a single-quoted zsh _arguments spec."""
    return text.replace("'", "'\\''")


def _zsh_describe(text: str) -> str:
    """A description inside [...] of an _arguments spec."""
    first = first_sentence(text)
    return _zsh_quote(first.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:"))


def _zsh_action(param: ParamDoc) -> str:
    if param.completion == "choice":
        return "(" + " ".join(_zsh_quote(c) for c in param.choices) + ")"
    if param.completion == "dir":
        return "_files -/"
    if param.completion == "file":
        return "_files"
    return " "


def _zsh_specs(command: CommandDoc) -> list[str]:
    specs = []
    for param in command.options:
        for group in (param.flags, param.negative_flags):
            if not group:
                continue
            exclusive = " ".join([*param.flags, *param.negative_flags])
            prefix = "*" if param.repeatable else f"({exclusive})"
            names = group[0] if len(group) == 1 else "{" + ",".join(group) + "}"
            value = ""
            if param.metavar is not None:
                value = f":{_zsh_quote(param.metavar.replace(':', '_'))}:{_zsh_action(param)}"
            spec = f"'{prefix}'{names}'[{_zsh_describe(param.help)}]{value}'"
            specs.append(spec)
    for position, param in enumerate(command.arguments, start=1):
        where = "*" if param.repeatable else str(position)
        specs.append(f"'{where}:{_zsh_quote((param.metavar or '').lower())}:{_zsh_action(param)}'")
    return specs


def render_zsh(root: CommandDoc) -> str:
    """A zsh completion function file (#compdef), to be placed on $fpath as _gsvc."""
    out = [
        "#compdef gsvc",
        f"# zsh completion for gsvc. Generated by \"{REGENERATE_COMMAND}\"; do not edit.",
        "",
    ]
    for sub in root.subcommands:
        out += [f"_gsvc_{sub.name.replace('-', '_')}() {{", "    _arguments -s -S \\"]
        out += [f"        {spec} \\" for spec in _zsh_specs(sub)]
        out += ["        && return 0", "}", ""]
    out += ["_gsvc() {", "    local curcontext=\"$curcontext\" state line", "    typeset -A opt_args",
            "    _arguments -C -s -S \\"]
    out += [f"        {spec} \\" for spec in _zsh_specs(root)]
    out += ["        '1: :->command' \\", "        '*:: :->args' \\", "        && return 0", "",
            "    case $state in", "        command)", "            local -a commands",
            "            commands=("]
    for sub in root.subcommands:
        out.append(f"                '{_zsh_quote(sub.name)}:{_zsh_quote(sub.summary)}'")
    out += ["            )", "            _describe -t commands 'gsvc command' commands", "            ;;",
            "        args)", "            case $line[1] in"]
    for sub in root.subcommands:
        out.append(f"                {sub.name}) _gsvc_{sub.name.replace('-', '_')} ;;")
    out += ["            esac", "            ;;", "    esac", "}", "", '_gsvc "$@"']
    return "\n".join(out) + "\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(condition: str, param: ParamDoc) -> list[str]:
    lines = []
    for group in (param.flags, param.negative_flags):
        if not group:
            continue
        parts = ["complete -c gsvc", f"-n {_fish_quote(condition)}"]
        for spelling in group:
            if spelling.startswith("--"):
                parts.append(f"-l {spelling[2:]}")
            elif len(spelling) == 2:
                parts.append(f"-s {spelling[1]}")
            else:
                parts.append(f"-o {spelling[1:]}")
        if param.metavar is not None:
            if param.completion == "choice":
                parts.append(f"-x -a {_fish_quote(' '.join(param.choices))}")
            elif param.completion == "dir":
                parts.append("-x -a '(__fish_complete_directories)'")
            elif param.completion == "file":
                parts.append("-r -F")
            else:
                parts.append("-x")
        if param.help:
            parts.append(f"-d {_fish_quote(first_sentence(param.help))}")
        lines.append(" ".join(parts))
    return lines


def render_fish(root: CommandDoc) -> str:
    """A fish completion file, to be placed in ~/.config/fish/completions/gsvc.fish."""
    names = " ".join(sub.name for sub in root.subcommands)
    top = "__fish_use_subcommand"
    out = [
        f"# fish completion for gsvc. Generated by \"{REGENERATE_COMMAND}\"; do not edit.",
        "complete -c gsvc -f",
    ]
    for param in root.options:
        out += _fish_option(top, param)
    for sub in root.subcommands:
        out.append(f"complete -c gsvc -n {top} -a {sub.name} -d {_fish_quote(sub.summary.rstrip('.'))}")
    for sub in root.subcommands:
        condition = f"__fish_seen_subcommand_from {sub.name}"
        for param in sub.options:
            out += _fish_option(condition, param)
        argument = _argument_completion(sub)
        if argument is not None and argument.completion == "choice":
            values = _fish_quote(" ".join(argument.choices))
            out.append(f"complete -c gsvc -n {_fish_quote(condition)} -a {values}")
        elif argument is not None and argument.completion in ("file", "dir"):
            out.append(f"complete -c gsvc -n {_fish_quote(condition)} -F")
    if not names:
        out.append("# no subcommands are registered in this version")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

RENDERERS: dict[Path, Callable[[CommandDoc, str], str]] = {
    MAN_PATH: render_man,
    BASH_PATH: lambda root, _version: render_bash(root),
    ZSH_PATH: lambda root, _version: render_zsh(root),
    FISH_PATH: lambda root, _version: render_fish(root),
}


def generate(app: typer.Typer | None = None, version: str | None = None) -> dict[Path, str]:
    """All generated files, as {path relative to the repository root: text}."""
    if app is None or version is None:
        from gsvc_cli import __version__
        from gsvc_cli.cli import app as gsvc_app

        app = app or gsvc_app
        version = version or __version__
    root = describe_app(app)
    return {path: render(root, version) for path, render in RENDERERS.items()}


def stale_files(root_dir: Path = REPO_ROOT) -> list[Path]:
    """Generated files whose committed text differs from what the app produces now."""
    stale = []
    for path, text in generate().items():
        target = root_dir / path
        if not target.exists() or target.read_text() != text:
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsvc_cli.docs_gen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files and exit 1; write nothing")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for path in stale:
            print(f"stale: {path} (regenerate with: {REGENERATE_COMMAND})", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generate().items():
        target = args.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
