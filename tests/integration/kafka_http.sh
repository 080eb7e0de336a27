# Photos fetched over http from a server on loopback that the test starts:
# a photo (directly and through a redirect) is embedded; a 404, a server
# slower than the timeout, a body over the byte limit (with and without a
# length), a redirect to file://, too many redirects and a host that does not
# resolve are failures with their reasons. With the default config, loopback
# addresses are refused.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kafka.sh"

mkdir -p "$T/www"
cp "$DATA/images/bicycle_final/111085122871_0.JPG" "$T/www/good0.jpg"
cp "$DATA/images/bicycle_final/111085122871_1.JPG" "$T/www/good1.jpg"
head -c 200000 /dev/urandom >"$T/www/big.jpg"
python3 "$ROOT/tests/tools/http_server.py" "$T/www" >"$T/http.port" 2>"$T/http.log" &
http_pid=$!
trap 'kill $http_pid 2>/dev/null; kafka_stop; cleanup' EXIT
for _ in $(seq 100); do
	[ -s "$T/http.port" ] && break
	sleep 0.05
done
port=$(head -n 1 "$T/http.port")
[ -n "$port" ] || fail "http server did not start"
H="http://127.0.0.1:$port"

kafka_start -b 1 -t ad-images:2 -t private:1
ev() {
	printf '800\t{"ad_id": "800", "image_id": "%s", "url": "%s",' "$1" "$2"
	printf ' "created_at": "2026-11-30T10:00:00Z"}\n'
}
{
	ev 801 "$H/img/good0.jpg"
	ev 802 "$H/redirect?to=$H/img/good1.jpg"
	ev 803 "$H/img/missing.jpg"
	ev 804 "$H/slow"
	ev 805 "$H/img/big.jpg"
	ev 806 "$H/chunked/300000"
	ev 807 "$H/redirect?to=file:///etc/passwd"
	ev 808 "$H/redirect?to=$H/redirect%3Fto%3D$H/redirect%253Fto%253D$H/img/good0.jpg"
	ev 809 "http://photos.invalid/x.jpg"
	ev 810 "$H/drip"
} | kcat -b "$BOOTSTRAP" -t ad-images -P -K $'\t'

write_kafka_config http "" "limits:
    max_bytes: 100000
fetch:
    timeout_s: 3
    max_redirects: 2
    low_speed_bytes: 100
    low_speed_s: 2
    allow_private_networks: true"
run_pipeline 3 --config "$CFG"
reason() { q "select coalesce(failure_stage || ': ' || failure_reason, status) from ad_images
	where image_id = '$1'"; }
expect_eq "$(reason 801)" "embedded" "photo over http"
expect_eq "$(q "select content_sha256 from ad_images where image_id = '801'")" \
	"$(sha256sum "$T/www/good0.jpg" | cut -d' ' -f1)" "bytes fetched over http"
expect_eq "$(reason 802)" "embedded" "photo through a redirect"
expect_eq "$(reason 803)" "fetch: http: status 404" "404"
reason 804 | grep -q "^fetch: http: timed out" || fail "slow server: $(reason 804)"
expect_eq "$(reason 805)" "fetch: too large: over the limit of 100000 bytes" "too large (length)"
expect_eq "$(reason 806)" "fetch: too large: over the limit of 100000 bytes" "too large (chunked)"
expect_eq "$(reason 807)" "fetch: http: redirect to a scheme other than http or https" \
	"redirect to file://"
expect_eq "$(reason 808)" "fetch: http: more than 2 redirects" "too many redirects"
expect_eq "$(reason 809)" "fetch: http: host not found" "unresolvable host"
reason 810 | grep -q "^fetch: http: timed out" || fail "dripping server: $(reason 810)"
expect_eq "$(q "select count(*) from failures where key like 'image:%'")" 8 "failure rows"

# by default an event cannot make the pipeline reach loopback, also not through IPv6 forms
# that carry an IPv4 address (NAT64, IPv4-compatible, 6to4)
{
	ev 811 "$H/img/good0.jpg"
	ev 812 "http://[64:ff9b::7f00:1]:$port/img/good0.jpg"
	ev 813 "http://[::7f00:1]:$port/img/good0.jpg"
	ev 814 "http://[2002:a00:1::1]:$port/img/good0.jpg"
} | kcat -b "$BOOTSTRAP" -t private -P -K $'\t'
sed -i 's/allow_private_networks: true/allow_private_networks: false/' "$CFG"
sed -i 's/topic: ad-images/topic: private/' "$CFG"
run_pipeline 3 --config "$CFG"
for id in 811 812 813 814; do
	expect_eq "$(reason $id)" \
		"fetch: http: address not allowed (loopback, private or link-local network)" \
		"private address refused ($id)"
done
