"""``easel``: the argument parser, configuration, and errors turned into exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .._version import __version__
from ..client import Easel
from ..errors import APIConnectionError, APIError, EaselError, WaitTimeout
from . import commands, exit_codes
from .config import ConfigError, resolve
from .output import Output

Handler = Callable[[argparse.Namespace, Easel, Output], int]

EPILOG = """\
configuration: EASEL_API_KEY and EASEL_URL, or a profile in ~/.config/easel/config.toml
(--profile NAME, EASEL_PROFILE, EASEL_CONFIG for another file).
exit codes: 0 ok, 1 API error, 2 usage or configuration, 3 timeout, 4 server unreachable,
5 the job/training/run ended unsuccessfully, 130 interrupted.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors prefixed like the CLI's own messages."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(exit_codes.USAGE, f"easel: error: usage: {message}\n")


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``easel --json usage`` and
    ``easel usage --json`` are the same)."""
    common = argparse.ArgumentParser(add_help=False)
    suppress = argparse.SUPPRESS
    common.add_argument("--json", action="store_true", default=suppress, help="JSON on stdout")
    common.add_argument("--profile", default=suppress, help="profile in the config file")
    common.add_argument("--url", default=suppress, help="server URL (overrides EASEL_URL)")
    common.add_argument(
        "-q", "--quiet", action="store_true", default=suppress, help="no progress bars"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="easel",
        description="Generate, fine-tune and run catalogs on Easel.",
        epilog=EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"easel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: argparse._SubParsersAction, name: str, handler: Handler, help_text: str
    ) -> argparse.ArgumentParser:
        p = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        return p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def waiting(p: argparse.ArgumentParser, default: float) -> None:
        p.add_argument(
            "--timeout", type=float, default=default, help=f"seconds to wait (default {default:g})"
        )

    # generate
    g = command(sub, "generate", commands.cmd_generate, "submit a generation job")
    g.add_argument("prompt", nargs="?", help="the prompt (or use --template)")
    g.add_argument("--model")
    g.add_argument("--category")
    g.add_argument("--template")
    g.add_argument("--template-version", type=int)
    g.add_argument("--var", action="append", metavar="NAME=VALUE", help="template variable")
    g.add_argument("--negative-prompt")
    g.add_argument("--style")
    g.add_argument("--width", type=int)
    g.add_argument("--height", type=int)
    g.add_argument("--aspect-ratio")
    g.add_argument("--cfg-scale", type=float)
    g.add_argument("--steps", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("-n", "--num-images", type=int)
    g.add_argument("--scheduler")
    g.add_argument("--priority", choices=("interactive", "bulk"))
    g.add_argument(
        "--layout", type=json.loads, help='JSON: [{"phrase": …, "box": [x0, y0, x1, y1]}]'
    )
    g.add_argument("--mode", choices=("txt2img", "img2img", "inpaint"))
    g.add_argument("--strength", type=float)
    g.add_argument("--source-image", help="a generated image's id to vary")
    g.add_argument("--source-upload", help="an upload's id to vary (easel upload PATH)")
    g.add_argument("--mask-upload", help="an inpainting mask's upload id")
    g.add_argument("--feather", type=float)
    g.add_argument("--param", action="append", metavar="NAME=VALUE", help="any protocol field")
    g.add_argument("--idempotency-key")
    g.add_argument("--wait", action="store_true", help="wait for the job to finish")
    g.add_argument("--download", metavar="DIR", help="save the images in DIR (implies --wait)")
    waiting(g, 600)

    # upload
    u = command(sub, "upload", commands.cmd_upload, "upload an image to vary, or a mask")
    u.add_argument("path", help="a PNG, JPEG or WebP file")
    u.add_argument("--kind", choices=("image", "mask"), default="image")

    # jobs
    jobs_sub = group("jobs", "list, show, wait for or cancel jobs")
    jl = command(jobs_sub, "list", commands.cmd_jobs_list, "recent jobs, newest first")
    jl.add_argument("--status", action="append", help="only these statuses (repeatable)")
    jl.add_argument("--limit", type=int, default=20)
    js = command(jobs_sub, "show", commands.cmd_jobs_show, "one job")
    js.add_argument("id")
    jc = command(jobs_sub, "cancel", commands.cmd_jobs_cancel, "cancel a job")
    jc.add_argument("id")
    jw = command(jobs_sub, "wait", commands.cmd_jobs_wait, "wait for a job to finish")
    jw.add_argument("id")
    jw.add_argument("--download", metavar="DIR")
    waiting(jw, 600)

    # train
    t = command(sub, "train", commands.cmd_train, "fine-tune a category from a folder of photos")
    t.add_argument("folder", help="folder of 3-30 PNG/JPEG/WebP photos")
    t.add_argument("--category", required=True)
    t.add_argument("--token", required=True, help="rare token, e.g. sks")
    t.add_argument("--class-prompt", required=True, help="e.g. 'a bottle'")
    t.add_argument("--instance-prompt")
    t.add_argument("--mode", choices=("lora", "full"))
    t.add_argument("--param", action="append", metavar="NAME=VALUE", help="trainer parameter")
    t.add_argument("--idempotency-key")
    t.add_argument("--follow", action="store_true", help="follow progress until it finishes")
    waiting(t, 3600)

    # catalog
    cat_sub = group("catalog", "catalogs: create, upload rows, run, export")
    cc = command(cat_sub, "create", commands.cmd_catalog_create, "create a catalog")
    cc.add_argument("slug")
    cc.add_argument("--name")
    cc.add_argument("--default-template")
    cu = command(cat_sub, "upload", commands.cmd_catalog_upload, "upsert rows from CSV/JSONL")
    cu.add_argument("slug")
    cu.add_argument("file")
    cu.add_argument("--format", choices=("csv", "jsonl"))
    cu.add_argument("--create", action="store_true", help="create the catalog if it is missing")
    cr = command(cat_sub, "run", commands.cmd_catalog_run, "start a run")
    cr.add_argument("slug")
    cr.add_argument("--mode", choices=("all", "missing", "changed"), default="missing")
    cr.add_argument("--idempotency-key")
    cr.add_argument("--wait", action="store_true", help="wait for the run to complete")
    waiting(cr, 3600)
    ce = command(cat_sub, "export", commands.cmd_catalog_export, "a run's manifest and ZIP")
    ce.add_argument("run", help="run id")
    ce.add_argument("--download", metavar="DIR", help="save manifest CSV and ZIP in DIR")
    ce.add_argument("--rebuild", action="store_true", help="rebuild it first")
    waiting(ce, 600)

    # models
    m_sub = group("models", "categories and model versions")
    command(m_sub, "list", commands.cmd_models_list, "categories and their aliases")
    mv = command(m_sub, "versions", commands.cmd_models_versions, "a category's versions")
    mv.add_argument("category")
    mp = command(m_sub, "promote", commands.cmd_models_promote, "point an alias at a version")
    mp.add_argument("category")
    mp.add_argument("version", type=int)
    mp.add_argument("--alias", default="production", choices=("production", "staging"))
    mr = command(m_sub, "rollback", commands.cmd_models_rollback, "undo the last promotion")
    mr.add_argument("category")
    mr.add_argument("--alias", default="production", choices=("production", "staging"))

    command(sub, "usage", commands.cmd_usage, "images today and GPU-seconds this month")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(json_mode=getattr(args, "json", False), quiet=getattr(args, "quiet", False))
    try:
        settings = resolve(profile=getattr(args, "profile", None), url=getattr(args, "url", None))
        easel = Easel(api_key=settings.api_key, base_url=settings.url)
    except (ConfigError, ValueError) as exc:
        out.error(str(exc), code="configuration")
        return exit_codes.USAGE
    try:
        with easel:
            return args.handler(args, easel, out)
    except argparse.ArgumentTypeError as exc:
        out.error(str(exc), code="usage")
        return exit_codes.USAGE
    except APIError as exc:
        out.error(exc.message, code=exc.code, status=exc.status, fields=exc.fields)
        return exit_codes.API_ERROR
    except APIConnectionError as exc:
        out.error(str(exc), code="unreachable")
        return exit_codes.UNREACHABLE
    except WaitTimeout as exc:
        last = getattr(exc.last, "raw", None)
        if last is not None:
            out.result(last, lambda: None)
        status = (last or {}).get("status")
        message = f"{exc} It goes on (last status: {status})." if status else str(exc)
        out.error(message, code="timeout")
        return exit_codes.TIMEOUT
    except OSError as exc:  # a folder or file named on the command line, or a download's
        out.error(str(exc), code="file")
        return exit_codes.USAGE
    except EaselError as exc:  # e.g. a download that arrived corrupted, a failed export
        out.error(str(exc), code="error")
        return exit_codes.API_ERROR
    except KeyboardInterrupt:
        out.error("Interrupted; a submitted job keeps running.", code="interrupted")
        return exit_codes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
