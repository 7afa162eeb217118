# cairn %preun: stop the agent on erase ($1 = 0), not on upgrade.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now cairn.service cairn-dns.socket >/dev/null 2>&1 || :
fi
