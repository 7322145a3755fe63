"""Visual Genome names: the cleaning rules applied to raw object / attribute strings, and the vocabulary files.

The rules are those of the bottom-up-attention preprocessing (``data/genome/setup_vg.py``):

- every string is lower-cased and stripped, and one trailing '.' is removed;
- an object name of several words whose leading words are all common attributes ("white dog") becomes the last
  word ("dog") and the leading words become attributes of that object;
- an attribute string "a and b" gives the attributes "a" and "b", except "black and white", kept whole.

A vocabulary file has one class a line; a line may list synonyms separated by commas ("television,tv"), all
mapped to that line's index, the first being the display name. Index = line number + 1; index 0 is the
placeholder ('__background__' for objects, '__no_attribute__' for attributes).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import AnnotationError, MissingFileError

# Adjectives that, in front of an object name, are split off as attributes (setup_vg.py's list).
COMMON_ATTRIBUTES = frozenset({
    'white', 'black', 'blue', 'green', 'red', 'brown', 'yellow', 'small', 'large', 'silver', 'wooden', 'orange',
    'gray', 'grey', 'metal', 'pink', 'tall', 'long', 'dark'})


def clean_string(text: str) -> str:
    """Lower-case, strip, drop one trailing '.' (and the blanks before it)."""
    text = text.lower().strip()
    if text.endswith('.'):
        return text[:-1].strip()
    return text


def split_object_name(name: str) -> tuple[str, list[str]]:
    """A raw object name -> (object name, attributes taken from its leading common adjectives)."""
    text = clean_string(name)
    words = text.split()
    if len(words) > 1 and all(w in COMMON_ATTRIBUTES for w in words[:-1]):
        return words[-1], words[:-1]
    return text, []


def split_attribute(text: str) -> list[str]:
    """A raw attribute string -> its attributes ("red and blue" -> ["red", "blue"])."""
    text = clean_string(text)
    if text == 'black and white':
        return [text]
    return [part.strip() for part in text.split(' and ')]


@dataclass(frozen=True)
class Vocabulary:
    """names[i]: the display name of index i (names[0] the placeholder); index: every synonym -> its index."""

    names: tuple[str, ...]
    index: dict[str, int]

    def __len__(self) -> int:
        return len(self.names)


def read_vocabulary(path: str, placeholder: str) -> Vocabulary:
    """Read a vocabulary file (one class a line, comma-separated synonyms); index 0 is ``placeholder``."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise MissingFileError(f'{path} does not exist; run data/scripts/fetch_vg.py (see data/README.md)') from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AnnotationError(f'{path}: an empty vocabulary; write one class a line')
    names = [placeholder]
    index = {placeholder: 0}
    for lineno, line in enumerate(lines, 1):
        synonyms = [n.lower().strip() for n in line.split(',')]
        if not all(synonyms):
            raise AnnotationError(f'{path}, line {lineno}: an empty name in {line!r}; write one class a line, '
                                  'synonyms separated by commas')
        for n in synonyms:
            if n in index:
                raise AnnotationError(f'{path}, line {lineno}: {n!r} is already the name of class {index[n]} '
                                      f'({names[index[n]]!r}); a name may appear once')
            index[n] = lineno
        names.append(synonyms[0])
    return Vocabulary(tuple(names), index)
