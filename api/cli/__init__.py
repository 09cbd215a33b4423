"""The `wangge` command line: database, migrations, server, demo, import/export, tokens."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from api.cli import admin, calendar, data, gazetteer, levels, outbox, partitions, patrols
from api.cli.check import check_command
from api.cli.cluster import ClusterError
from api.cli.geocode import geocode_command
from api.errors import WanggeError
from api.transfer.export import ExportError
from api.transfer.read import UnreadableFile
from api.transfer.report import ImportRejected
from spatial.crs import UnknownCRS

app = typer.Typer(help="wangge 网格化管理 GIS 服务", no_args_is_help=True, add_completion=False)
admin.register(app)
data.register(app)
outbox.register(app)  # outbox, warnings
calendar.register(app)
patrols.register(app)  # patrols purge
partitions.register(app)  # events partitions
levels.register(app)  # levels list|add|set|remove
gazetteer.register(app)  # gazetteer aliases list|add|remove
app.command("geocode")(geocode_command)
app.command("check")(check_command)
err = Console(stderr=True, soft_wrap=True)  # one problem per line, greppable in logs


def main() -> None:
    try:
        app()  # standalone: typer reports usage errors itself (exit 2)
    except ImportRejected as error:
        err.print(f"[red]导入被拒绝[/red]：{error.message}")
        for issue in error.report.errors[:100]:
            err.print(f"  - {issue.describe(error.report.file)}", highlight=False)
        if len(error.report.errors) > 100:
            err.print(f"  … 另有 {len(error.report.errors) - 100} 个问题（用 --json 查看全部）")
        sys.exit(1)
    except (
        WanggeError,
        UnreadableFile,
        ExportError,
        ClusterError,
        UnknownCRS,
        LookupError,
        ValueError,
    ) as error:
        err.print(f"[red]错误[/red]：{getattr(error, 'message', error)}", highlight=False)
        sys.exit(1)
    except OperationalError as error:
        err.print(
            "[red]无法连接数据库[/red]：先运行 `wangge db start`（项目自带集群），"
            f"或设置 WANGGE_DATABASE_URL。\n  {str(error.orig).strip().splitlines()[0]}",
            highlight=False,
        )
        sys.exit(1)
