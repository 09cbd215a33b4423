"""Import (upload) and export (download) of grids, buildings and monitoring points."""

from fastapi import APIRouter

router = APIRouter(tags=["import and export"])
