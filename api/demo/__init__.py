"""The demo street as the service holds it: `spatial.demo_street`'s grids and buildings plus
invented cameras (`cameras`), staff (`people`) and events (`events`), loaded by `loader`."""

from api.demo.contents import DemoContents, demo_contents
from api.demo.loader import DatabaseNotEmpty, DemoSummary, load_demo

__all__ = ["DatabaseNotEmpty", "DemoContents", "DemoSummary", "demo_contents", "load_demo"]
