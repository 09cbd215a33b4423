"""`wangge db`, `migrate`, `serve`, `demo`, `token`, `generations`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.auth import Role, create_token, list_tokens, revoke_token
from api.cli import cluster
from api.db import migrate as migrations
from api.db.engine import make_engine
from api.db.generations import has_grids, list_generations
from api.login_links import DEFAULT_DAYS, MAX_DAYS, REUSE_MINUTES, issue_link, qr_text
from api.login_links import qr_png as login_qr_png
from api.settings import get_settings
from spatial.demo_street import MAX_STREETS

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="项目自带的 PostgreSQL 集群（数据在 .data/）", no_args_is_help=True)
    demo = typer.Typer(help="演示街道", no_args_is_help=True)
    token = typer.Typer(help="API 令牌", no_args_is_help=True)
    app.add_typer(db, name="db")
    app.add_typer(demo, name="demo")
    app.add_typer(token, name="token")
    db.command("start")(db_start)
    db.command("stop")(db_stop)
    db.command("status")(db_status)
    app.command("migrate")(migrate)
    app.command("serve")(serve)
    app.command("generations")(generations)
    demo.command("load")(demo_load)
    token.command("create")(token_create)
    token.command("list")(token_list)
    token.command("revoke")(token_revoke)


def _print_status(status: cluster.ClusterStatus) -> None:
    state = "[green]运行中[/green]" if status.running else "[yellow]未运行[/yellow]"
    if not status.initialised:
        state = "[yellow]未初始化[/yellow]"
    console.print(f"PostgreSQL 集群 {status.data_dir}（端口 {status.port}）：{state}")


def _refuse_external(action: str) -> bool:
    if get_settings().database_url:
        console.print(f"已设置 WANGGE_DATABASE_URL，使用外部数据库，不{action}本地集群")
        return True
    return False


def db_start() -> None:
    """初始化（如需）并启动本地集群，创建 wangge 数据库。可重复执行。"""
    if _refuse_external("启动"):
        return
    with console.status("启动 PostgreSQL …"):
        _print_status(cluster.start(get_settings().cluster))


def db_stop() -> None:
    """停止本地集群。可重复执行。"""
    if _refuse_external("停止"):
        return
    _print_status(cluster.stop(get_settings().cluster))


def db_status() -> None:
    """显示本地集群状态；未运行时退出码为 3。"""
    if _refuse_external("查看"):
        return
    status = cluster.status(get_settings().cluster)
    _print_status(status)
    if not status.running:
        raise typer.Exit(3)


def migrate(
    revision: Annotated[str, typer.Option(help="目标版本（默认最新）")] = "head",
    downgrade: Annotated[bool, typer.Option("--downgrade", help="降级到 --revision")] = False,
) -> None:
    """以结构所有者身份把数据库结构升级（或降级）到指定版本，再给服务角色授权（只读写数据）。"""
    settings = get_settings()
    url = settings.resolved_owner_url()
    if downgrade:
        migrations.downgrade(url, revision)
    else:
        migrations.upgrade(url, revision)
    role = settings.resolved_service_role()
    if role and not downgrade:
        migrations.grant_service_role(url, role)
    console.print(
        f"数据库结构已到版本 {migrations.current_revision(make_engine(settings, as_owner=True)) or 'base'}"
        + (f"；服务角色 {role} 可读写数据、不能改结构" if role and not downgrade else "")
    )


def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    workers: Annotated[
        int, typer.Option(help="工作进程数（>1 时共享同一份查询索引，发布新版本时平滑替换）", min=1)
    ] = 1,
) -> None:
    """启动 HTTP 服务（API 文档在 /api/v1/docs）。"""
    import socket

    import uvicorn

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(
                f"{host}:{port} 已被占用（另一个 wangge 或其他服务）：换一个端口，"
                f"例如 `wangge serve --port {port + 1}` 或 `make demo PORT={port + 1}`"
            ) from error
    console.print(f"wangge 服务：http://{host}:{port}/  （API 文档 /api/v1/docs）")
    if workers > 1:  # one index, built by a master and shared copy-on-write by forked workers
        from api.lookup.shared_serve import serve as serve_shared

        serve_shared(host, port, workers)
        return
    uvicorn.run("api.main:app", host=host, port=port, log_level="info")


def generations() -> None:
    """列出网格版本及当前生效版本。"""
    engine = make_engine(get_settings())
    with engine.connect() as connection:
        items = list_generations(connection)
    table = Table("版本", "说明", "创建时间", "最近生效时间")
    for item in items:
        table.add_row(
            str(item.id),
            item.description,
            f"{item.created_at:%Y-%m-%d %H:%M}",
            f"{item.activated_at:%Y-%m-%d %H:%M}" if item.activated_at else "-",
        )
    console.print(table)


def demo_load(
    seed: Annotated[int | None, typer.Option(help="随机种子（相同种子生成相同街道）")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="清空现有数据后载入")] = False,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="已有网格数据时跳过（make demo 用）")
    ] = False,
    streets: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_STREETS,
            help="街道数：1 为演示街道；N 为以它为中心的 N 个街道的演示城区（20 个约 2.5 万个微网格）",
        ),
    ] = 1,
) -> None:
    """载入演示街道：8 个社区、60 个网格、1202 个微网格、约 2 万栋楼、137 个监控点（--streets N：N 倍）。"""
    from api.demo import load_demo

    settings = get_settings()
    if if_empty and not reset and _has_grids(settings):
        console.print("数据库中已有网格数据，跳过演示载入（`wangge demo load --reset` 可重新载入）")
        return
    with console.status("准备 …") as status:
        summary = load_demo(
            make_engine(settings, as_owner=True),  # it truncates tables: the owner's right
            seed or settings.demo_seed,
            reset=reset,
            progress=lambda message: status.update(message + " …"),
            streets=streets,
        )
    levels = "、".join(f"{k} {v}" for k, v in summary.grids_by_level.items())
    console.print(
        f"{'演示街道' if streets == 1 else f'演示城区（{streets} 个街道）'}已载入（第 {summary.generation_id} 版）：{levels}；楼栋 {summary.buildings}，"
        f"监控点 {summary.cameras}，人员 {summary.staff}，历史事件 {summary.events}"
    )
    places = summary.gazetteer
    if places:
        console.print(
            f"地名地址库：道路 {places.get('road', 0)}，小区 {places.get('compound', 0)}，"
            f"门牌 {places.get('house_number', 0)}，兴趣点 {places.get('poi', 0)}"
        )


def _has_grids(settings) -> bool:
    with make_engine(settings).connect() as connection:
        return has_grids(connection)


def token_create(
    role: Annotated[Role, typer.Option(help="角色")],
    grid: Annotated[
        list[str] | None, typer.Option(help="网格编码（field_staff 必填，可重复）")
    ] = None,
    unit: Annotated[str | None, typer.Option(help="处置单位编码（handler 必填）")] = None,
    staff: Annotated[int | None, typer.Option(help="人员编号（网格员本人：我的任务）")] = None,
    name: Annotated[str, typer.Option(help="令牌名称（谁在用）")] = "cli",
    expires_days: Annotated[int | None, typer.Option(help="有效天数（默认不过期）")] = None,
    qr: Annotated[
        bool, typer.Option("--qr", help="同时生成扫码登录链接和二维码（终端显示并写入 PNG）")
    ] = False,
    link_days: Annotated[
        int, typer.Option(min=1, max=MAX_DAYS, help="登录链接有效天数（配合 --qr）")
    ] = DEFAULT_DAYS,
    qr_png: Annotated[
        Path | None,
        typer.Option(help="二维码 PNG 写到哪里（默认 ./wangge-login-<令牌编号>.png）"),
    ] = None,
) -> None:
    """创建 API 令牌。令牌只显示这一次，数据库只保存其哈希。--qr：手机扫码即可登录。"""
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    settings = get_settings()
    png = qr_png
    if qr and png is not None and not png.parent.is_dir():
        raise typer.BadParameter(f"目录不存在：{png.parent}", param_hint="--qr-png")
    link = None
    with make_engine(settings).begin() as connection:
        created = create_token(
            connection,
            name=name,
            role=role,
            grid_codes=tuple(grid or ()),
            unit_code=unit,
            staff_id=staff,
            expires_at=expires,
            actor="cli",
        )
        if qr:
            link = issue_link(
                connection, created.id, public_url=settings.public_url, actor="cli", days=link_days
            )
    console.print(f"令牌 #{created.id}（{created.role.value}）：", highlight=False)
    print(created.secret)
    if link is not None:
        png = png or Path(f"wangge-login-{created.id}.png")
        png.write_bytes(login_qr_png(link.login_url))
        expiry = link.expires_at.astimezone().strftime("%Y-%m-%d %H:%M")
        console.print(f"扫码登录链接（{expiry} 前有效；首次登录后 {REUSE_MINUTES} 分钟内可重扫）：")
        print(link.login_url)
        print(qr_text(link.login_url), end="")
        console.print(f"二维码图片：{png}", highlight=False)
        console.print("手机扫码登录后，上面的令牌会换新，只有这部手机持有它。", highlight=False)


def token_list() -> None:
    """列出令牌（不显示令牌本身）。"""
    with make_engine(get_settings()).connect() as connection:
        rows = list_tokens(connection)
    table = Table("编号", "名称", "前缀", "角色", "网格", "创建", "过期", "吊销")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["name"],
            row["prefix"] + "…",
            row["role"],
            ",".join(row["grid_codes"]) or "-",
            f"{row['created_at']:%Y-%m-%d}",
            f"{row['expires_at']:%Y-%m-%d}" if row["expires_at"] else "-",
            f"{row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "-",
        )
    console.print(table)


def token_revoke(token_id: Annotated[int, typer.Argument(help="令牌编号")]) -> None:
    """吊销令牌。"""
    with make_engine(get_settings()).begin() as connection:
        if not revoke_token(connection, token_id, "cli"):
            raise LookupError(f"没有编号为 {token_id} 的有效令牌")
    console.print(f"令牌 #{token_id} 已吊销")
