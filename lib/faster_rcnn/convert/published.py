"""Where the published tf-faster-rcnn and pytorch-faster-rcnn detectors are, and what is known of each.

tf-faster-rcnn's own fetch script names one archive, with the one published checksum: the ResNet-101
trained on VOC 07+12 (``res101/voc_0712_80k-110k.tgz``, md5 ``cb32e9df...``). Its README points to the
same folders on three CMU hosts and to a Google Drive folder for the rest; the other archive names below
come from third-party scripts that fetched them (no checksum is published for those). pytorch-faster-rcnn's
own models are on Google Drive only, which needs a browser: the fetch script prints what to download.
"""
from __future__ import annotations

from dataclasses import dataclass

# tf-faster-rcnn's README and fetch script: the same folder tree on each host, tried in this order.
TF_HOSTS = ('http://ladoga.graphics.cs.cmu.edu/xinleic/tf-faster-rcnn',
            'http://gs11655.sp.cs.cmu.edu/xinleic/tf-faster-rcnn',
            'http://xinlei.sp.cs.cmu.edu/xinleic/tf-faster-rcnn')
TF_DRIVE = 'https://drive.google.com/drive/folders/0B1_fAEgxdnvJSmF3YUlZcHFqWTQ'
RTL_DRIVE = 'https://drive.google.com/open?id=0B7fNdx_jAqhtNE10TDZDbFRuU0E'


@dataclass(frozen=True)
class PublishedModel:
    source: str                 # 'tf' or 'rtl'
    net: str
    dataset: str                # the scripts' DATASET name
    archive: str | None         # file name inside the host folder <host>/<net>/ (None: not known)
    md5: str | None             # published checksum (None: none published)
    iters: int                  # the iteration in the model's file name
    mean_ap: str                # the published accuracy (VOC07 test mAP, or COCO minival AP)
    provenance: str             # where the archive name comes from


def _tf(net: str, dataset: str, archive: str | None, iters: int, mean_ap: str, md5: str | None = None,
        provenance: str = "tf-faster-rcnn's README (folder only)") -> PublishedModel:
    return PublishedModel('tf', net, dataset, archive, md5, iters, mean_ap, provenance)


MODELS = {
    ('tf', 'res101', 'pascal_voc_0712'): _tf('res101', 'pascal_voc_0712', 'voc_0712_80k-110k.tgz', 110000, '79.8',
                                             md5='cb32e9df553153d311cc5095b2f8c340',
                                             provenance="tf-faster-rcnn's data/scripts/fetch_faster_rcnn_models.sh"),
    ('tf', 'vgg16', 'pascal_voc_0712'): _tf('vgg16', 'pascal_voc_0712', 'voc_0712_80k-110k.tgz', 110000, '75.7',
                                            provenance='third-party copies of the fetch script'),
    ('tf', 'res101', 'pascal_voc'): _tf('res101', 'pascal_voc', None, 70000, '75.7'),
    ('tf', 'vgg16', 'pascal_voc'): _tf('vgg16', 'pascal_voc', None, 70000, '70.8'),
    ('tf', 'res101', 'coco'): _tf('res101', 'coco', 'coco_900-1190k.tgz', 1190000, '35.4 AP',
                                  provenance='third-party scripts (archive name)'),
    ('tf', 'vgg16', 'coco'): _tf('vgg16', 'coco', 'coco_900-1190k.tgz', 1190000, '30.2 AP',
                                 provenance='third-party scripts (archive name)'),
    ('tf', 'res50', 'coco'): _tf('res50', 'coco', 'coco_900-1190k.tgz', 1190000, '32.4 AP',
                                 provenance='third-party scripts (archive name)'),
    ('tf', 'res152', 'coco'): _tf('res152', 'coco', 'coco_900-1190k.tgz', 1190000, '36.1 AP',
                                  provenance='third-party scripts (archive name)'),
    ('tf', 'mobile', 'coco'): _tf('mobile', 'coco', 'coco_900-1190k.tgz', 1190000, '21.8 AP',
                                  provenance='third-party scripts (archive name)'),
}
for _net, _ds, _it, _ap in (('vgg16', 'pascal_voc', 70000, '71.22'), ('vgg16', 'pascal_voc_0712', 110000, '75.33'),
                            ('vgg16', 'coco', 1190000, '29.2 AP'), ('res101', 'pascal_voc', 70000, '75.29'),
                            ('res101', 'pascal_voc_0712', 110000, '79.26'), ('res101', 'coco', 1190000, '35.1 AP'),
                            ('mobile', 'coco', 1190000, '21.4 AP')):
    MODELS[('rtl', _net, _ds)] = PublishedModel('rtl', _net, _ds, f'{_net}_faster_rcnn_iter_{_it}.pth', None, _it, _ap,
                                                "pytorch-faster-rcnn's README (Google Drive only)")


def published(source: str, net: str, dataset: str) -> PublishedModel | None:
    return MODELS.get((source, net, dataset))
