#!/usr/bin/env bash
# Make a minimal root filesystem tarball for one of our binaries: the binary, the shared
# libraries it links (as ldd lists them, with the dynamic loader), an unprivileged user and /tmp.
# The images are then `FROM scratch` + this tarball: nothing is pulled from a registry.
# Usage: docker/rootfs.sh <binary> <out.tar>
set -euo pipefail
bin=$1; out=$2
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/data" "$root/config"
chmod 1777 "$root/tmp"; chown 65534:65534 "$root/data"
cp "$bin" "$root/usr/local/bin/"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
done
# PKCS#11 modules are loaded at run time: SoftHSM2 is included when present on the build host.
if [[ "$(basename "$bin")" == notary-signer && -e /usr/lib/softhsm/libsofthsm2.so ]]; then
  for f in /usr/lib/softhsm/libsofthsm2.so $(ldd /usr/lib/softhsm/libsofthsm2.so | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
  done
fi
printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/data:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" -cf "$out" .
