"""Pure geometry for wangge: CRS handling, validation and repair, the demo street generator.

Nothing here touches HTTP, a database session or files: functions take and return
shapely/numpy objects.
"""
