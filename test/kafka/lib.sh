# test/kafka/lib.sh: shell functions shared by test/kafka/start, stop and
# cluster. Sourced, never run. The sourcing script sets $prog (its name in
# messages) and $here (this directory) first.
# shellcheck shell=bash
# The sourcing script provides $prog, $here, $version and $heap_opts, and
# reads $classpath and $launcher back.
# shellcheck disable=SC2154,SC2034

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

# whole_number NAME VALUE: die unless VALUE is a non-empty string of digits.
whole_number() {
	case "$2" in
	'' | *[!0-9]*) die "$1 must be a whole number, got '$2'" ;;
	esac
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	# shellcheck disable=SC2016 # $1 expands in the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# kafka_jvm PID PROPS: true if PID is alive and is a kafka.Kafka JVM started
# with the properties file PROPS (guards against pid reuse).
kafka_jvm() {
	local pid=$1 props=$2 cmdline
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case "$cmdline" in *kafka.Kafka*"$props"*) return 0 ;; esac
	return 1
}

# pid_running PID: some thread of the process is still alive (not a
# zombie). An exiting JVM's cmdline can vanish before it has released its
# ports, so stopping waits on this, not on kafka_jvm. The threads are checked,
# not just the process: after SIGKILL the main thread can be a zombie while
# other threads still exit, holding the process's sockets (and ports).
pid_running() {
	local st state
	case "$1" in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$1" 2>/dev/null || return 1
	for st in /proc/"$1"/task/*/stat; do
		state=$(sed 's/.*) //' "$st" 2>/dev/null | cut -d' ' -f1) || continue
		case "$state" in '' | Z | X) ;; *) return 0 ;; esac
	done
	return 1
}

# stop_pid PID SIGNAL TIMEOUT_S: send SIGNAL (TERM or KILL) and wait up to
# TIMEOUT_S seconds for the process to go; after a TERM that was not enough,
# send KILL and wait 10 s more. Dies if the process cannot be ended.
stop_pid() {
	local pid=$1 sig=$2 timeout_s=$3 i
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < timeout_s * 10; i++)); do
		pid_running "$pid" || return 0
		sleep 0.1
	done
	if [ "$sig" != KILL ]; then
		log "pid $pid still running after ${timeout_s}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			pid_running "$pid" || return 0
			sleep 0.1
		done
	fi
	die "could not end pid $pid"
}

# wait_ports_closed PROPS: wait (up to 10 s) until no port of the listeners in
# the properties file PROPS accepts connections any more. The kernel can
# release a killed process's sockets a moment after the process is gone, and
# a start on the same ports must not find them taken.
wait_ports_closed() {
	local ports p i open
	ports=$(sed -n 's/^listeners=//p' "$1" 2>/dev/null | grep -o ':[0-9][0-9]*' | tr -d ':' || true)
	for ((i = 0; i < 100; i++)); do
		open=
		for p in $ports; do
			if port_open "$p"; then open=$p; fi
		done
		[ -n "$open" ] || return 0
		sleep 0.1
	done
	log "warning: 127.0.0.1:$open still accepts connections 10s after the broker exited"
}

# log_tail LOGFILE: the first errors (at most 5) and the last lines (at most
# 25) of a broker log, each cut to 300 characters, and the path of the whole
# file: never the whole log.
log_tail() {
	local logfile=$1 re=' (ERROR|FATAL) |^[A-Za-z0-9_.$]+(Exception|Error)\b'
	if [ -s "$logfile" ]; then
		if grep -q -E "$re" "$logfile"; then
			log "first errors in $logfile:"
			grep -E "$re" "$logfile" | head -n 5 | cut -c 1-300 >&2
		fi
		log "last lines of $logfile (the whole log is that file):"
		tail -n 25 "$logfile" | cut -c 1-300 >&2
	else
		log "$logfile is empty or missing"
	fi
}

# node_ready LOGFILE PORT: the log says the server started and PORT accepts
# connections.
node_ready() {
	grep -q 'Kafka Server started' "$1" 2>/dev/null && port_open "$2"
}

# check_version: validate $version (KAFKA_VERSION).
check_version() {
	case "$version" in
	'' | *[!0-9A-Za-z.-]*) die "KAFKA_VERSION has unexpected characters: '$version'" ;;
	esac
}

# fetch_jars: make sure the jars of Kafka $version are cached (fetching them
# from Maven Central with Maven the first time) and set $classpath.
fetch_jars() {
	command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka $version needs Java 17+)"
	local cache_root kdir libs tmp_libs mvn_log errs
	cache_root=${MIRRORLINE_CACHE:-$HOME/.cache/mirrorline}
	kdir=$cache_root/kafka-$version
	libs=$kdir/libs
	if [ -f "$libs/kafka_2.13-$version.jar" ]; then
		log "using cached Kafka $version jars in $libs"
	else
		command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH; needed once to fetch Kafka $version into $libs"
		mkdir -p "$kdir"
		tmp_libs=$(mktemp -d "$kdir/libs.tmp.XXXXXX")
		mvn_log=$kdir/mvn.log
		log "fetching Kafka $version jars from Maven Central into $libs (log: $mvn_log)"
		# -U: retry artifacts whose earlier download failed (Maven otherwise caches
		# the failure in ~/.m2 and refuses to retry until the update interval).
		if ! mvn -q -B -U -Dstyle.color=never -f "$here/pom.xml" \
			-Dkafka.version="$version" \
			dependency:copy-dependencies -DincludeScope=runtime \
			-DoutputDirectory="$tmp_libs" >"$mvn_log" 2>&1 </dev/null 9>&-; then
			rm -rf "$tmp_libs"
			log "Maven failed; its errors:"
			# Strip the colour codes Maven 3.8 emits even with -B, then show the
			# [ERROR] lines without Maven's generic help boilerplate.
			errs=$(sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | grep '^\[ERROR\]' |
				grep -v -e '^\[ERROR\] *$' -e 're-run Maven' -e 'Re-run Maven' \
					-e 'possible solutions' -e '\[Help 1\] http' | head -n 25 || true)
			if [ -n "$errs" ]; then
				printf '%s\n' "$errs" >&2
			else
				sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | tail -n 40 >&2
			fi
			die "could not fetch org.apache.kafka:kafka_2.13:$version with Maven (full log: $mvn_log)"
		fi
		if [ ! -f "$tmp_libs/kafka_2.13-$version.jar" ]; then
			rm -rf "$tmp_libs"
			die "Maven succeeded but kafka_2.13-$version.jar is missing (log: $mvn_log)"
		fi
		# Publish atomically; if a concurrent start won the race, keep its copy.
		if ! mv -T "$tmp_libs" "$libs" 2>/dev/null; then
			rm -rf "$tmp_libs"
			[ -f "$libs/kafka_2.13-$version.jar" ] || die "could not move jars into $libs"
		fi
		log "cached $(find "$libs" -name '*.jar' | wc -l | tr -d ' ') jars in $libs"
	fi
	classpath="$libs/*"
}

# write_log4j DIR: the broker's log4j2 configuration, DIR/log4j2.properties.
write_log4j() {
	cat >"$1/log4j2.properties" <<'EOF'
# Written by test/kafka. Everything goes to stdout, which the script
# redirects into server.log.
status = warn
# Let Kafka's own shutdown hook keep logging until the JVM exits.
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${sys:mirrorline.kafka.loglevel:-INFO}
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# new_cluster_id: 16 random bytes, base64url without padding (what
# "kafka-storage random-uuid" prints), never starting with '-' (as Kafka).
new_cluster_id() {
	local id=
	while [ -z "$id" ] || [ "${id#-}" != "$id" ]; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
	done
	printf '%s\n' "$id"
}

# format_storage DIR CLUSTER_ID [EXTRA ARGS...]: kafka.tools.StorageTool format
# for the node whose files are in DIR (server.properties, log4j2.properties).
format_storage() {
	local dir=$1 id=$2
	shift 2
	if ! java -Xmx256m -Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-Dmirrorline.kafka.loglevel=WARN -cp "$classpath" \
		kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" "$@" \
		>"$dir/format.log" 2>&1 </dev/null 9>&-; then
		log "kafka.tools.StorageTool format failed for $dir; output:"
		tail -n 40 "$dir/format.log" >&2
		if grep -q 'UnsupportedClassVersionError' "$dir/format.log"; then
			java -version >&2 2>&1 || true
			die "Kafka $version needs a newer Java than the one on PATH"
		fi
		die "storage format failed (full output: $dir/format.log)"
	fi
}

# launch_jvm DIR: start kafka.Kafka on DIR/server.properties in the
# background, logging to DIR/server.log; DIR/kafka.pid gets the JVM's pid and
# $launcher the pid of a process that lives exactly as long as the JVM.
launch_jvm() {
	local dir=$1
	# setsid: own session, so the broker survives the caller's process group
	# and terminal. The inner bash writes its own pid and execs java, so
	# kafka.pid is the JVM's pid; setsid -w keeps $! alive as long as the JVM.
	# shellcheck disable=SC2016,SC2086
	setsid -w bash -c 'echo $$ >"$0"; exec "$@"' "$dir/kafka.pid" \
		java $heap_opts -XX:+UseG1GC -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-cp "$classpath" kafka.Kafka "$dir/server.properties" \
		</dev/null >"$dir/server.log" 2>&1 9>&- &
	launcher=$!
}

# rotate_log LOGFILE: move an earlier run's log to LOGFILE.1, .2, ... so a
# restart keeps it and the readiness check only sees the new run's lines.
rotate_log() {
	local n=1
	[ -e "$1" ] || return 0
	while [ -e "$1.$n" ]; do n=$((n + 1)); done
	mv "$1" "$1.$n"
}
