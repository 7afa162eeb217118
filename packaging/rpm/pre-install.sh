# cairn %pre: the cairn user (sysusers.d where systemd-sysusers exists).
if command -v systemd-sysusers >/dev/null 2>&1; then
    echo 'u cairn - "cairn service discovery agent" /var/lib/cairn /usr/sbin/nologin' | systemd-sysusers - || :
elif ! getent passwd cairn >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/cairn --no-create-home \
        --shell /sbin/nologin --comment "cairn service discovery agent" cairn || :
fi
