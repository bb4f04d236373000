# switch-to-configuration for lab systems (prepended: SYSTEM=, FAIL_ACTIVATION=).
# Lab "services" are files in $HLPLAY_LAB_UNITS_DIR whose content is the unit
# state (active / failed); health checks and facts read them.
set -eu
action="${1:-}"
case "$action" in
  switch|test|boot|dry-activate) ;;
  *) echo "usage: switch-to-configuration switch|boot|test|dry-activate" >&2; exit 1 ;;
esac
units="${HLPLAY_LAB_UNITS_DIR:-}"
log="${HLPLAY_LAB_LOG:-}"
[ -n "$log" ] && echo "$(date +%s) $action $SYSTEM" >> "$log"
if [ "$action" = "dry-activate" ]; then
  echo "would start: $(cat "$SYSTEM/services")"
  exit 0
fi
if [ "$action" = "boot" ]; then
  echo "boot entry updated for $SYSTEM"
  exit 0
fi
if [ -n "$units" ]; then
  mkdir -p "$units"
  wanted=" $(cat "$SYSTEM/services") "
  failing=" $(cat "$SYSTEM/failed-services") "
  for f in "$units"/*.service; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .service)
    case "$wanted" in *" $name "*) ;; *) echo "stopping $name.service"; rm -f "$f" ;; esac
  done
  for name in $(cat "$SYSTEM/services"); do
    case "$failing" in
      *" $name "*) echo "starting $name.service: failed"; echo failed > "$units/$name.service" ;;
      *) echo "starting $name.service"; echo active > "$units/$name.service" ;;
    esac
  done
fi
if [ -n "$FAIL_ACTIVATION" ]; then
  echo "activation script failed" >&2
  exit 1
fi
echo "activated $SYSTEM"
