#!/bin/sh
# dockerfile_rules.sh DOCKERFILE TARGET...: the Dockerfile rules that matter here,
# checked without a linter (hadolint is not packaged for Debian 12): every base
# image has a pinned tag; apt-get install never pulls recommended packages and
# never leaves the package lists behind; and each runtime TARGET stage runs as a
# named non-root USER, has a HEALTHCHECK and an ENTRYPOINT, and installs no
# -dev package. Prints one line per violation; exit 1 when there is any.
set -eu
file=$1; shift
awk -v targets=" $* " '
  function report(what) { printf "%s:%d: %s\n", FILENAME, FNR, what; bad = 1 }
  function close_stage() {
    if (stage != "" && index(targets, " " stage " ")) {
      if (!user) { printf "%s: stage %s has no USER\n", FILENAME, stage; bad = 1 }
      if (!health) { printf "%s: stage %s has no HEALTHCHECK\n", FILENAME, stage; bad = 1 }
      if (!entry) { printf "%s: stage %s has no ENTRYPOINT\n", FILENAME, stage; bad = 1 }
      seen[stage] = 1
    }
    user = health = entry = 0
  }
  # Join continued lines into one instruction.
  /\\$/ { line = line substr($0, 1, length($0) - 1) " "; next }
  { $0 = line $0; line = "" }
  /^ARG DEBIAN_IMAGE=/ { split($2, kv, "="); args["${DEBIAN_IMAGE}"] = kv[2] }
  /^FROM / {
    close_stage()
    image = $2; stage = (toupper($3) == "AS") ? $4 : ""
    if (image in args) image = args[image]
    if (image !~ /:/ && !(image in stages)) report("base image " image " has no tag")
    if (image ~ /:latest$/) report("base image " image " is not pinned (latest)")
    if (stage != "") stages[stage] = 1
  }
  /^USER / { user = 1; if ($2 == "root" || $2 == "0") report("runs as root") }
  /^HEALTHCHECK / { health = 1 }
  /^ENTRYPOINT / { entry = 1 }
  /apt-get install/ {
    if ($0 !~ /--no-install-recommends/) report("apt-get install without --no-install-recommends")
    if ($0 !~ /rm -rf \/var\/lib\/apt\/lists/) report("apt-get install leaves /var/lib/apt/lists")
    if (index(targets, " " stage " ") && $0 ~ /-dev( |$)/) report("runtime stage " stage " installs a -dev package")
  }
  END {
    close_stage()
    n = split(targets, wanted, " ")
    for (i = 1; i <= n; i++)
      if (wanted[i] != "" && !(wanted[i] in seen)) { printf "%s: no stage %s\n", FILENAME, wanted[i]; bad = 1 }
    exit bad
  }
' "$file"
