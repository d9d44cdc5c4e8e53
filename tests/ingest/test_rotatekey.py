import io

import pytest
from django.core.management import call_command
from django.test import override_settings

from callscope.store.models import AuditEntry, Recording
from callscope.store.recordings import OpenRecording

NEW_KEY = bytes(range(32))


@pytest.mark.django_db
def test_rotation_rewraps_keys_without_touching_the_audio(testdata, tmp_path, settings):
    capture = testdata / "generated/baresip_call_pcmu_8s.pcap"
    call_command("import", str(capture), "--workers", "1", stdout=io.StringIO(),
                 stderr=io.StringIO())  # fmt: skip
    recording = Recording.objects.get()
    before = OpenRecording(recording).read()
    container = recording.storage_key
    old_key = tmp_path / "old.key"
    old_key.write_text(settings.AUDIO_MASTER_KEY.hex(), encoding="ascii")
    with override_settings(AUDIO_MASTER_KEY=NEW_KEY):
        out = io.StringIO()
        call_command("rotatekey", "--old-key-file", str(old_key), stdout=out)
        assert "1 recording keys re-wrapped" in out.getvalue()
        recording.refresh_from_db()
        assert recording.storage_key == container
        assert OpenRecording(recording).read() == before
    with pytest.raises(Exception, match="master key not found"):
        OpenRecording(recording)  # the old key alone no longer opens it
    assert AuditEntry.objects.filter(action="master_key_rotated").exists()
