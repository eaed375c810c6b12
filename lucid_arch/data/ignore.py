"""The label-map value that no loss or metric counts, in every mask source and metric.

255, as in VOC's borders and mmseg's ``ignore_index``: the largest 8-bit value, so it never
collides with a class id of an 8-bit PNG label map (classes are 0 .. 254).
"""

IGNORE = 255
