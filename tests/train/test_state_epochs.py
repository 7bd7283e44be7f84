"""A checkpoint counts its best epoch as the MLflow ``best_epoch`` tag does (1 = the first epoch), and
checkpoints written before that (0-based) still read back right."""
from mlplatform.train.state import RunState


def test_checkpoint_best_epoch_is_the_tag_value():
    s = RunState()
    for epoch, value in enumerate([0.5, 0.3, 0.4]):  # the loop's 0-based epochs: the best is the 2nd epoch
        s.select(value, epoch, "min")
    payload = s.to_payload()
    assert payload["best_epoch"] == 2 == s.best_epoch + 1  # what loop.py tags as best_epoch
    assert RunState.from_payload(payload) == s


def test_a_checkpoint_without_epoch_base_is_read_as_0_based():
    old = RunState(epoch=3, step=30, best=0.3, best_epoch=1, bad_vals=1).to_payload()
    del old["epoch_base"]
    old["best_epoch"] = 1  # what earlier versions wrote for the 2nd epoch
    assert RunState.from_payload(old).best_epoch == 1


def test_no_validation_yet_round_trips():
    s = RunState()
    assert s.to_payload()["best_epoch"] == 0 and RunState.from_payload(s.to_payload()).best_epoch == -1
