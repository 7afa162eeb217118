# cairn %post: directories; on upgrade ($1 > 1) restart a running agent.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create cairn.conf || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -gt 1 ]; then
        systemctl try-restart cairn.service || :
    fi
fi
