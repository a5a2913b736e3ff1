#!/bin/sh
# Builds a small image from a static busybox binary, for baton's container examples and
# tests: no registry is needed (`docker import` of a root file system made here).
#
#   sh examples/images/busybox.sh [TAG]      (default tag: baton/busybox:1)
#
# The binary is $BUSYBOX, else the `busybox` on PATH, else /bin/busybox; it must be static
# (Debian: `apt-get install busybox-static`). An image already there is kept.
set -eu
tag=${1:-baton/busybox:1}
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
busybox=${BUSYBOX:-$(command -v busybox || echo /bin/busybox)}
if [ ! -x "$busybox" ]; then
  echo "busybox.sh: no busybox at \`$busybox\` (hint: apt-get install busybox-static, or set BUSYBOX)" >&2
  exit 2
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "busybox.sh: \`$busybox\` is linked dynamically; the image needs a static one (hint: apt-get install busybox-static)" >&2
  exit 2
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/workspace" "$root/baton"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - "$tag" >/dev/null
