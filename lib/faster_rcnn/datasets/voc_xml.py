"""Reading one PASCAL VOC annotation file (``Annotations/<image_id>.xml``).

VOC coordinates are 1-based inclusive pixel indices; the roidb uses 0-based ones, so loaders subtract 1.
Errors name the file and the object (index and class name) at fault.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..errors import AnnotationError, MissingFileError


@dataclass(frozen=True)
class VocObject:
    name: str
    difficult: bool
    bbox_1based: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax as written in the file
    index: int  # position of the <object> element in the file, for error messages
    attributes: tuple[str, ...] = ()  # its <attribute> elements (BUTD's Visual Genome XML), lower-cased


@dataclass(frozen=True)
class VocAnnotation:
    path: str
    width: int | None  # from <size>, None when the file has none
    height: int | None
    objects: list[VocObject]


def _text(node: ET.Element, tag: str, path: str, what: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise AnnotationError(f'{path}: {what} has no <{tag}>')
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: str, what: str) -> float:
    text = _text(node, tag, path, what)
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f'{path}: {what}: <{tag}> is not a number: {text!r}') from None
    if value != value or value in (float('inf'), float('-inf')):
        raise AnnotationError(f'{path}: {what}: <{tag}> is not finite: {text!r}')
    return value


def parse_voc_annotation(path: str) -> VocAnnotation:
    """Parse ``path``; raise AnnotationError (malformed XML, missing fields) or FileNotFoundError."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise MissingFileError(f'annotation file {path} does not exist: check the dataset folder and the '
                                'image set list') from None
    except ET.ParseError as e:
        raise AnnotationError(f'{path}: malformed XML ({e}); fix or regenerate the file') from None
    root = tree.getroot()
    width = height = None
    size = root.find('size')
    if size is not None and size.find('width') is not None:
        width = int(_number(size, 'width', path, '<size>'))
        height = int(_number(size, 'height', path, '<size>'))
        if width <= 0 or height <= 0:
            raise AnnotationError(f'{path}: <size> gives {width}x{height}; width and height must be positive')
    objects = []
    for i, obj in enumerate(root.findall('object')):
        name = _text(obj, 'name', path, f'object {i}').lower()
        what = f'object {i} ({name})'
        diff_node = obj.find('difficult')
        difficult = False
        if diff_node is not None and diff_node.text is not None and diff_node.text.strip():
            try:
                difficult = int(diff_node.text.strip()) != 0
            except ValueError:
                raise AnnotationError(f'{path}: {what}: <difficult> must be 0 or 1, got {diff_node.text!r}') from None
        bnd = obj.find('bndbox')
        if bnd is None:
            raise AnnotationError(f'{path}: {what} has no <bndbox>')
        box = tuple(_number(bnd, t, path, what) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
        attributes = tuple(a.text.strip().lower() for a in obj.findall('attribute') if a.text and a.text.strip())
        objects.append(VocObject(name=name, difficult=difficult, bbox_1based=box, index=i,  # type: ignore[arg-type]
                                 attributes=attributes))
    return VocAnnotation(path=path, width=width, height=height, objects=objects)


def parse_voc_objects(path: str) -> list[VocObject]:
    return parse_voc_annotation(path).objects
