"""Annotation formats, on the real split files and on small files written here."""

import shutil

import pytest

from artnet.data import (
    Annotations,
    VideoRecord,
    hmdb51_classes,
    kinetics400_classes,
    load_annotations,
    load_hmdb51,
    load_kinetics,
    load_list,
    load_ucf101,
)
from artnet.errors import DataError

from ..conftest import REFERENCE, require

UCF = REFERENCE / "test" / "data" / "ucf101_splits"
HMDB = REFERENCE / "test" / "data" / "hmdb51_splits"


def test_ucf101_split_counts_and_class_indices():
    require(UCF)
    train, test = load_ucf101(None, splits_dir=UCF, split=1), load_ucf101(None, splits_dir=UCF, split=1, subset="test")
    assert (len(train), len(test)) == (9537, 3783)
    assert len(train.classes) == 101 and train.classes[0] == "ApplyEyeMakeup" and train.classes[100] == "YoYo"
    assert train.classes.index("SoccerJuggling") == 83  # 84 in classInd.txt, 1-based
    by_path = {r.path: r.label for r in train.records + test.records}
    assert by_path["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"] == 0
    assert by_path["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"] == 0
    assert all(r.path.split("/")[0] == train.classes[r.label] for r in train.records + test.records)
    for split in (1, 2, 3):
        a = load_annotations("ucf101", root=None, annotations=UCF, split=split)
        b = load_annotations("ucf101", root=None, annotations=UCF, split=split, subset="test")
        assert len(a) + len(b) == 13320
        assert not {r.path for r in a.records} & {r.path for r in b.records}


def test_hmdb51_split_counts_and_upstream_class_order():
    require(HMDB)
    for split in (1, 2, 3):
        train = load_hmdb51(None, splits_dir=HMDB, split=split)
        test = load_hmdb51(None, splits_dir=HMDB, split=split, subset="test")
        assert (len(train), len(test)) == (3570, 1530)
        assert all(sum(r.label == c for r in test.records) == 30 for c in range(51))
    upstream = [line.strip() for line in (HMDB / "class_list.txt").read_text().splitlines() if line.strip()]
    assert hmdb51_classes() == upstream  # the shipped order is upstream's class_list.txt
    assert upstream.index("kick_ball") < upstream.index("kick") and upstream != sorted(upstream)
    train = load_hmdb51(None, splits_dir=HMDB)
    assert train.classes == upstream
    test = load_hmdb51(None, splits_dir=HMDB, subset="test")
    wave = [r for r in test.records if r.path == "20060723sfjffbartsinger_wave_f_cm_np1_ba_med_0.avi"]
    assert wave and wave[0].label == upstream.index("wave") == 50
    alphabetical = load_hmdb51(None, splits_dir=HMDB, class_order="alphabetical")
    assert alphabetical.classes == sorted(upstream) and len(alphabetical) == 3570
    from_file = load_hmdb51(None, splits_dir=HMDB, class_list=HMDB / "class_list.txt")
    assert [r.label for r in from_file.records] == [r.label for r in train.records]


def test_kinetics_class_names():
    names = kinetics400_classes()
    assert len(names) == 400 == len(set(names))
    assert names == sorted(names)
    assert (names[0], names[1], names[399]) == ("abseiling", "air drumming", "zumba")
    assert names.index("passing American football (in game)") == 208


def write(path, text, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def test_kinetics_csv_flat_and_class_folders(tmp_path):
    csv_file = write(
        tmp_path / "kinetics_val.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,abc_DEF-123,10,20,val,0\n"
        '"passing American football (in game)",xyz,0,10,val,0\n'
        "zumba,gone,5,15,val,0\n"
        "zumba,other,5,15,train,0\n",
    )
    root = tmp_path / "videos"
    write(root / "abseiling" / "abc_DEF-123_000010_000020.mp4", "")
    (root / "xyz").mkdir()  # a frame folder named by the bare youtube id
    with pytest.raises(DataError, match="1 of 3 videos .* not found") as caught:
        load_kinetics(root, csv_file=csv_file, subset="val")
    assert "gone_000005_000015" in str(caught.value)
    annotations = load_kinetics(root, csv_file=csv_file, subset="validate", max_missing_ratio=0.5)
    assert [r.label for r in annotations.records] == [0, 208]
    assert annotations.records[0].path == str(root / "abseiling" / "abc_DEF-123_000010_000020.mp4")
    assert annotations.records[1].path == str(root / "xyz")
    assert annotations.missing == ["gone_000005_000015"]
    assert len(load_kinetics(None, csv_file=csv_file)) == 4


def test_kinetics_unknown_class_names_file_and_line(tmp_path):
    csv_file = write(tmp_path / "k.csv", "label,youtube_id,time_start,time_end,split\nabseiling,a,0,10,val\nabseilling,b,0,10,val\n")
    with pytest.raises(DataError, match=r"k\.csv:3: unknown class 'abseilling'"):
        load_kinetics(None, csv_file=csv_file)
    bad_header = write(tmp_path / "h.csv", "name,id\nx,y\n")
    with pytest.raises(DataError, match=r"h\.csv:1: header"):
        load_kinetics(None, csv_file=bad_header)


def test_upstream_list_format_and_plain_lists(tmp_path):
    root = tmp_path / "frames"
    for name in ("v_a", "v_b"):
        (root / name).mkdir(parents=True)
    upstream = write(tmp_path / "train.txt", f"{root}/v_a 120 3\nv_b 90 0\n\n", newline="\r\n")
    annotations = load_list(root, list_file=upstream)
    assert [(r.path, r.num_frames, r.label) for r in annotations.records] == [(str(root / "v_a"), 120, 3), (str(root / "v_b"), 90, 0)]
    assert annotations.classes == ["0", "1", "2", "3"]
    assert annotations.records[0].video_id == "v_a"
    plain = write(tmp_path / "plain.txt", "v_a.avi   cat  \nv_b.avi dog\n")
    named = load_list(root, list_file=plain, classes=["dog", "cat"])
    assert [(r.label, r.num_frames) for r in named.records] == [(1, None), (0, None)]
    assert named.records[0].path == str(root / "v_a")  # the frame folder of v_a.avi


@pytest.mark.parametrize(
    "text, message",
    [
        ("v_a 10 0\nv_b 10 0 7\n", r"train\.txt:2: expected '<path> <num_frames> <label>'"),
        ("v_a ten 0\n", r"train\.txt:1: frame count 'ten'"),
        ("v_a 10 5\n", r"train\.txt:1: label 5 is out of range"),
        ("v_a 10 horse\n", r"train\.txt:1: unknown class 'horse'"),
    ],
)
def test_malformed_list_lines(tmp_path, text, message):
    list_file = write(tmp_path / "train.txt", text)
    with pytest.raises(DataError, match=message):
        load_list(None, list_file=list_file, classes=["cat", "dog"])


def test_ucf101_errors_name_file_and_line(tmp_path):
    require(UCF)
    splits = tmp_path / "splits"
    shutil.copytree(UCF, splits)
    (splits / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nJuggling/v_x.avi 7\n")
    with pytest.raises(DataError, match=r"trainlist01\.txt:2: unknown class 'Juggling'"):
        load_ucf101(None, splits_dir=splits)
    (splits / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n")
    with pytest.raises(DataError, match=r"trainlist01\.txt:1: label 2 does not match the class folder"):
        load_ucf101(None, splits_dir=splits)
    with pytest.raises(DataError, match="split must be"):
        load_ucf101(None, splits_dir=splits, split=4)


def test_ucf101_videos_found_as_files_mp4_or_frame_folders(tmp_path, media):
    require(UCF)
    root = tmp_path / "UCF101"
    write(root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", "")  # as listed
    write(root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c02.mp4", "")  # re-encoded
    (root / "v_ApplyEyeMakeup_g08_c03").mkdir()  # extracted frames, flat
    with pytest.raises(DataError, match=r"9534 of 9537 videos \(100\.0%\) not found"):
        load_ucf101(root, splits_dir=UCF)
    found = load_ucf101(root, splits_dir=UCF, max_missing_ratio=1.0)
    assert [r.video_id for r in found.records] == ["v_ApplyEyeMakeup_g08_c01", "v_ApplyEyeMakeup_g08_c02", "v_ApplyEyeMakeup_g08_c03"]
    assert found.records[1].path.endswith(".mp4") and len(found.missing) == 9534


def test_hmdb51_errors(tmp_path):
    require(HMDB)
    splits = tmp_path / "splits"
    shutil.copytree(HMDB, splits)
    (splits / "wave_test_split1.txt").write_text("a.avi 1\nb.avi 3\n")
    with pytest.raises(DataError, match=r"wave_test_split1\.txt:2: expected '<video> <0\|1\|2>'"):
        load_hmdb51(None, splits_dir=splits)
    (splits / "wave_test_split1.txt").unlink()
    with pytest.raises(DataError, match="no split 1 file for class.*wave"):
        load_hmdb51(None, splits_dir=splits)
    write(splits / "waving_test_split2.txt", "a.avi 1\n")
    with pytest.raises(DataError, match="unknown class 'waving'"):
        load_hmdb51(None, splits_dir=splits, split=2)


def test_unknown_kind_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown annotation kind"):
        load_annotations("sports1m", root=None)
    with pytest.raises(DataError, match="annotation file not found"):
        load_list(None, list_file=tmp_path / "none.txt")


# -- a file holds one line format: a line that breaks it is an error, never read as something else


@pytest.mark.parametrize(
    "text, message",
    [
        # the short line's number would be taken as a label
        ("v_a 10 0\nv_b 1\n", r"train\.txt:2: a '<path> <label>' line among '<path> <num_frames> <label>' lines \(as on line 1"),
        ("\nv_a 1\nv_b 10 0\n", r"train\.txt:3: a '<path> <num_frames> <label>' line among '<path> <label>' lines .as on line 2"),
        ("v_a 10 cat\nv_b 10 1\n", r"train\.txt:2: label 1 is an index, but this file's labels are names \(as on line 1\)"),
        ("v_a 10 1\nv_b 10 cat\n", r"train\.txt:2: label 'cat' is a name, but this file's labels are indices \(as on line 1\)"),
        ("", r"list .*train\.txt: lists no video"),
        ("\n  \n", r"list .*train\.txt: lists no video"),
    ],
)
def test_list_lines_of_another_format(tmp_path, text, message):
    list_file = write(tmp_path / "train.txt", text)
    with pytest.raises(DataError, match=message):
        load_list(None, list_file=list_file, classes=["cat", "dog"])


def test_class_name_files_of_one_format(tmp_path):
    listed = write(tmp_path / "l.txt", "v 1\n")
    indexed = write(tmp_path / "ind.txt", "2 dog\n1 cat\n")  # UCF101's classInd format: by index, not line order
    assert load_list(None, list_file=listed, classes=indexed).classes == ["cat", "dog"]
    for names in (["3 point shot", "air drumming"], ["3 point shot", "4 wheel drive"]):  # one name a line
        assert load_list(None, list_file=listed, classes=write(tmp_path / "k.txt", "\n".join(names))).classes == names
    for text, message in [
        ("1 cat\ndog\n", r"c\.txt:2: expected '<index> <name>' as on line 1, got 'dog'"),
        ("1 cat\n3 dog\n", r"c\.txt: class indices must run 1\.\.2 without gaps"),
        ("0 cat\n0 dog\n", r"c\.txt:2: class index 0 is given twice"),
        ("\n", r"c\.txt: no class names"),
    ]:
        with pytest.raises(DataError, match=message):
            load_list(None, list_file=tmp_path / "l.txt", classes=write(tmp_path / "c.txt", text))


def test_a_list_is_written_in_one_format(tmp_path):
    records = [VideoRecord("a.mp4", 0, 10), VideoRecord("b.mp4", 1)]
    with pytest.raises(DataError, match="b.mp4: no frame count, unlike other entries"):
        Annotations(records, ["x", "y"], "test").write_list(tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()
    Annotations(records[1:], ["x", "y"], "test").write_list(tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == "b.mp4 1\n"


def test_hmdb51_class_list_in_the_index_format(tmp_path):
    require(HMDB)
    upstream = hmdb51_classes()
    indexed = write(tmp_path / "classInd.txt", "".join(f"{i + 1} {name}\n" for i, name in enumerate(upstream)))
    assert load_hmdb51(None, splits_dir=HMDB, class_list=indexed).classes == upstream


def test_ucf101_list_of_mixed_lines(tmp_path):
    require(UCF)
    splits = tmp_path / "splits"
    shutil.copytree(UCF, splits)
    videos = ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi 1")
    (splits / "testlist01.txt").write_text("\n".join(videos) + "\n")
    with pytest.raises(DataError, match=r"testlist01\.txt:2: a '<class>/<video> <label>' line among '<class>/<video>' lines"):
        load_ucf101(None, splits_dir=splits, subset="test")


def test_kinetics_row_with_more_columns_than_the_header(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    csv_file = write(tmp_path / "k.csv", header + "abseiling,a,0,10,val\nabseiling,b,c,0,10,val\n")
    with pytest.raises(DataError, match=r"k\.csv:3: expected the header's 5 columns, got 6"):
        load_kinetics(None, csv_file=csv_file)
    with pytest.raises(DataError, match=r"kinetics test .*k\.csv\): lists no video"):
        load_kinetics(None, csv_file=write(tmp_path / "k.csv", header + "abseiling,a,0,10,val\n"), subset="test")
