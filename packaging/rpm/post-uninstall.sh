# cairn %postun: erase keeps /var/lib/cairn and the cairn user (RPM has no purge:
# `rm -rf /var/lib/cairn && userdel cairn` removes them).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
