#!/bin/sh
# Screenshot of wangge's OGC API Features layers in the QGIS desktop (documentation only).
#   docs/qgis/screenshot.sh http://127.0.0.1:8093/ogc
# Needs Debian's qgis, python3-qgis, xvfb, imagemagick. Starts no wangge: pass a running one.
set -eu
BASE=${1:?usage: $0 http://HOST:PORT/ogc}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=$REPO/.cache/qgis
OUT=$REPO/docs/images/qgis-wangge-layers.png
SIZE=${WANGGE_QGIS_SIZE:-1600x1000}
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

rm -rf "$WORK" && mkdir -p "$WORK/profiles/default/QGIS"
# 1. Load every collection through the OAPIF provider, check counts, write project + map render.
QT_QPA_PLATFORM=offscreen /usr/bin/python3 "$HERE/screenshot.py" "$BASE" \
    --project "$WORK/wangge.qgs" --out "$WORK/map.png" --size "$SIZE"

# 2. A fresh QGIS profile that already knows the connection (Browser → WFS / OGC API – Features).
cat > "$WORK/profiles/default/QGIS/QGIS3.ini" <<EOF
[qgis]
connections-wfs\\wangge\\url=$BASE
connections-wfs\\wangge\\version=OGC_API_FEATURES
connections-wfs\\wangge\\pagesize=1000
connections-wfs\\wangge\\pagingenabled=true
checkVersion=false
showTips=false
[core]
NewsFeed\\httpsfeedqgisorg\\disabled=true
[locale]
overrideFlag=true
userLocale=zh-Hans
EOF

# 3. The real QGIS window on a virtual screen; capture_gui.py says when the map is drawn.
export WANGGE_QGIS_READY="$WORK/ready" WANGGE_QGIS_GRAB="$WORK/window.png"
xvfb-run -a -s "-screen 0 ${SIZE}x24" sh -c '
    qgis --profiles-path "$0" --nologo --noversioncheck --project "$0/wangge.qgs" \
        --code "$1/capture_gui.py" >"$0/qgis.log" 2>&1 &
    qgis_pid=$!
    waited=0
    while [ ! -f "$WANGGE_QGIS_READY" ] && [ $waited -lt 180 ]; do sleep 1; waited=$((waited + 1)); done
    if [ -f "$WANGGE_QGIS_READY" ]; then import -window root "$0/screen.png"; fi
    kill $qgis_pid; wait $qgis_pid || true
' "$WORK" "$HERE"

SHOT=$WORK/screen.png
[ -f "$SHOT" ] || SHOT=$WORK/window.png
[ -f "$SHOT" ] || SHOT=$WORK/map.png
mkdir -p "$(dirname "$OUT")"
# 160 colours keep the PNG small (a screenshot has few colours anyway).
convert "$SHOT" -colors 160 -define png:compression-level=9 "PNG8:$OUT"
echo "wrote $OUT from $(basename "$SHOT") ($(du -k "$OUT" | cut -f1) KB)"
