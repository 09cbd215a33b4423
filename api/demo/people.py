"""The demo street's invented staff: the 1+1+1+N team on every grid and a liaison on every micro-grid."""

from __future__ import annotations

import numpy as np

from spatial.demo_street import DemoGrid

SURNAMES = "王李张刘陈杨黄赵吴周徐孙朱马胡郭林何高梁郑罗宋谢唐韩曹许邓萧冯曾程蔡彭潘袁董余苏叶吕魏蒋田杜丁沈姜范江傅钟卢汪戴崔任陆廖姚方金邱夏谭韦贾邹石熊孟秦阎薛侯雷白龙段郝孔邵史毛常万顾赖武康贺严尹钱施牛洪龚"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建红文辉海燕鹏春宇浩晨欣怡婷雪梅琳颖斌峰亮俊凯"
Role = tuple[str, str | None]  # (role, department)
GRID_TEAM: tuple[Role, ...] = (
    ("grid_head", None),
    ("grid_instructor", "街道党工委"),
    ("full_time_worker", None),
    ("functional_officer", "派出所"),
    ("functional_officer", "综合行政执法局"),
)
MICRO_GRID_TEAM: tuple[Role, ...] = (("micro_grid_liaison", None),)


def _person(rng: np.random.Generator) -> tuple[str, str]:
    """An invented name and mobile number."""
    name = SURNAMES[int(rng.integers(len(SURNAMES)))]
    name += "".join(GIVEN[int(i)] for i in rng.integers(len(GIVEN), size=int(rng.integers(1, 3))))
    phone = (
        "1"
        + str(int(rng.choice([33, 35, 37, 38, 39, 58, 87, 89])))
        + f"{int(rng.integers(10**8)):08d}"
    )
    return name, phone


def staff(rng: np.random.Generator, grids: list[DemoGrid]) -> list[dict]:
    """One person per role: the grid team on every grid, a liaison on every micro-grid."""
    people = []
    for grid in grids:
        if grid.level == "grid":
            roles = GRID_TEAM
        elif grid.level == "micro_grid":
            roles = MICRO_GRID_TEAM
        else:
            continue
        for role, department in roles:
            name, phone = _person(rng)
            people.append(
                {
                    "name": name,
                    "phone": phone,
                    "department": department,
                    "grid_code": grid.code,
                    "role": role,
                }
            )
    return people
