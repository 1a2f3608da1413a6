from engines.stopping import StopStringMatcher


def _run(stop, pieces):
    matcher = StopStringMatcher(stop)
    emitted = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        emitted.append(text)
        if hit:
            return emitted, True
    emitted.append(matcher.flush())
    return emitted, False


def test_stop_string_split_across_pieces_never_leaks():
    emitted, hit = _run(["STOP"], ["Hello S", "TO", "P and more"])
    assert hit
    assert "".join(emitted) == "Hello "
    assert all("S" not in piece for piece in emitted)


def test_held_text_is_released_when_it_turns_out_not_to_be_a_stop():
    emitted, hit = _run(["STOP"], ["Hello S", "TAR"])
    assert not hit
    assert emitted == ["Hello ", "STAR", ""]


def test_earliest_of_several_stop_strings_wins():
    emitted, hit = _run(["world", "lo"], ["hello world"])
    assert hit and "".join(emitted) == "hel"


def test_stop_at_the_very_start_gives_empty_text():
    emitted, hit = _run(["\n"], ["\nabc"])
    assert hit and emitted == [""]


def test_text_without_stop_passes_through_unchanged():
    pieces = ["The", " capital", " of", " France"]
    emitted, hit = _run(["###"], pieces)
    assert not hit and "".join(emitted) == "".join(pieces)


def test_tail_that_is_a_prefix_of_a_longer_stop_is_flushed_at_the_end():
    emitted, hit = _run(["<end>"], ["answer <e"])
    assert not hit and emitted == ["answer ", "<e"]


def test_before_the_answer_may_stop_a_stop_string_is_text_but_its_beginning_is_held():
    matcher = StopStringMatcher(["ab"])
    assert matcher.feed("ab x a", can_stop=False) == ("ab x ", False)  # whole: text; a beginning: held
    assert matcher.feed("b", can_stop=True) == ("", True)  # begun before, ended after: found
    shorter = StopStringMatcher(["b", "abcd"])  # "ab" is held as the start of "abcd", and holds all of "b"
    assert shorter.feed("xab", can_stop=False) == ("x", False)
    assert shorter.feed("e", can_stop=True) == ("abe", False)  # that "b" came before the answer could stop
