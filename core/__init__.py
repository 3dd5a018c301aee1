"""Plain Python shared by every app and by the pipeline stages; no Django anywhere in it.

``vocabulary`` (emotions, element and user roles, DES size), ``masks`` (COCO RLE and mask
IoU through pycocotools), ``boxes`` (box IoU), ``pixels`` (EXIF orientation and pixel
modes), ``distributions`` (emotion distributions as vectors), ``triplets`` (phrase
triplets), ``alignment`` (pairing two answers' triplets by meaning: the one rule),
``priority`` (annotator agreement and the review-queue priority rule), ``reliability``
(intraclass correlations and correlations with intervals, for ratings on scales),
``qa_agreement`` (acceptance and model answer accuracy of reviewed QA pairs) and ``errors``
(the error of a statistic that has no value).
``text`` is the one text and number policy of every boundary (NUL, unpaired
surrogates, invisible-only text, non-finite numbers, 64-bit integers, datetimes).
"""
