# Pairs benchmark variants named .../baseline/... and .../knotmtls/... from
# `go test -bench` output and prints, for each pair, both costs and the
# throughput ratio baseline_ns / knotmtls_ns, means over -count runs (1.00 = as fast as the
# baseline; the goal for request and handshake paths is >= 0.97).
/^Benchmark/ && / ns\/op/ {
	name = $1
	sub(/-[0-9]+$/, "", name)           # GOMAXPROCS suffix
	variant = ""
	if (name ~ /\/baseline(\/|$)/) { variant = "baseline"; key = name; sub(/\/baseline/, "", key) }
	if (name ~ /\/knotmtls(\/|$)/) { variant = "knotmtls"; key = name; sub(/\/knotmtls/, "", key) }
	if (variant == "") next
	for (i = 2; i <= NF; i++) {
		if ($(i) == "ns/op") ns = $(i-1)
		if ($(i) == "allocs/op") allocs[key, variant] = $(i-1)
	}
	sum[key, variant] += ns; cnt[key, variant]++
	cost[key, variant] = sum[key, variant] / cnt[key, variant]   # mean over -count runs
	if (!(key in seen)) { seen[key] = 1; order[++n] = key }
}
END {
	printf "\n%-60s %14s %14s %8s %16s\n", "benchmark", "baseline ns/op", "knotmtls ns/op", "ratio", "knotmtls allocs"
	for (i = 1; i <= n; i++) {
		k = order[i]
		b = cost[k, "baseline"]; m = cost[k, "knotmtls"]
		if (b == "" || m == "") continue
		printf "%-60s %14.1f %14.1f %8.3f %16s\n", k, b, m, b / m, allocs[k, "knotmtls"]
	}
}
