"""The address matcher's development cases, as data.

tests/test_geocode_parse.py and tests/test_geocode_match.py run them; bench/geocode_cases.py leaves
every string in this module out of the evaluation set, so the figures in the README are measured
on wordings the rules were not tuned on.
"""

# A small hand-made vocabulary for the pure parsing tests (kind → names).
VOCABULARY = {
    "road": ("淞江路", "方洲路", "星海路", "凤里街", "湖东大道"),
    "compound": ("新翠居", "枫康庭", "景玉府", "翠湖庭", "金湖花园", "金湖"),
    "poi": ("星海小学", "星海实验小学"),
    "street": ("湖东示范街道",),
    "street_short": ("湖东示范", "湖东"),
    "community": ("翠湖社区",),
    "community_short": ("翠湖",),
}

# (what a caller wrote, its canonical text): one or more cases per normalisation rule.
NORMALISE_CASES = (
    ("淞江路１９号４幢", "淞江路19号4幢"),  # NFKC full-width digits
    ("景玉府Ａ座", "景玉府A幢"),  # full-width letter, 座
    ("新翠居 4 栋，", "新翠居4幢"),  # spaces and punctuation, 栋
    ("新翠居十二号楼三单元五零一室", "新翠居12幢3单元501室"),  # numerals before units, 号楼
    ("华池路一百零三号", "华池路103号"),  # 百 forms
    ("新翠居二十幢", "新翠居20幢"),  # 十 forms
    ("淞江路19号附1号", "淞江路19-1号"),  # 附号
    ("淞江路19号之一", "淞江路19-1号"),  # 之一
    ("淞江路十九号甲", "淞江路19甲号"),  # 甲乙丙 after 号
    ("淞江路19—1号", "淞江路19-1号"),  # dashes of every kind
    ("景玉府3A#楼", "景玉府3A幢"),  # a letter in a building number, 3A#楼
    ("景玉府9#", "景玉府9幢"),  # 9#
    ("新翠居小区4栋", "新翠居4幢"),  # 小区 dropped
    ("淞江路19弄3号", "淞江路19弄3号"),  # 弄 stays (the parser reads it)
    ("新翠居4棟2單元", "新翠居4幢2单元"),  # traditional forms of the address words
    ("淞江路壹拾玖号", "淞江路19号"),  # 大写 numerals
)

# What the parser makes of a text against VOCABULARY: the parts it must find (a subset), the
# address and complaint cut from the original wording, and any relative phrase.
PARSE_CASES = (
    # The four examples.
    {
        "text": "园区新翠居4栋楼下垃圾堆放",
        "parts": {"compound": "新翠居", "building": "4"},
        "address": "园区新翠居4栋",
        "complaint": "楼下垃圾堆放",
    },
    {
        "text": "淞江路19号4幢",
        "parts": {"road": "淞江路", "number": "19", "building": "4"},
        "address": "淞江路19号4幢",
        "complaint": "",
    },
    {
        "text": "方洲路与星海路交叉口有人占道",
        "parts": {"road": "方洲路", "road2": "星海路"},
        "address": "方洲路与星海路交叉口",
        "complaint": "有人占道",
    },
    {
        "text": "凤里街103号枫康庭28-1",
        "parts": {
            "road": "凤里街",
            "number": "103",
            "compound": "枫康庭",
            "building": "28",
            "unit": "1",
        },
        "address": "凤里街103号枫康庭28-1",
        "complaint": "",
    },
    # Administrative prefixes of every length.
    {
        "text": "江苏省苏州市苏州工业园区湖东示范街道淞江路19号新翠居4幢",
        "parts": {
            "street": "湖东示范街道",
            "road": "淞江路",
            "compound": "新翠居",
            "building": "4",
        },
        "address": "江苏省苏州市苏州工业园区湖东示范街道淞江路19号新翠居4幢",
        "complaint": "",
    },
    {
        "text": "江苏苏州园区翠湖社区翠湖庭3栋2单元501室",
        "parts": {"community": "翠湖社区", "compound": "翠湖庭", "building": "3", "unit": "2"},
        "address": "江苏苏州园区翠湖社区翠湖庭3栋2单元501室",
        "complaint": "",
    },
    {
        "text": "翠湖翠湖庭三号楼",  # short community form, then a compound that starts the same
        "parts": {"community": "翠湖", "compound": "翠湖庭", "building": "3"},
        "address": "翠湖翠湖庭三号楼",
        "complaint": "",
    },
    {
        "text": "湖东新翠居4栋门口",
        "parts": {"street": "湖东", "compound": "新翠居", "building": "4"},
        "address": "湖东新翠居4栋",
        "complaint": "门口",
    },
    # Building forms.
    {
        "text": "新翠居十二号楼三单元501室漏水",
        "parts": {"compound": "新翠居", "building": "12", "unit": "3", "room": "501"},
        "address": "新翠居十二号楼三单元501室",
        "complaint": "漏水",
    },
    {
        "text": "枫康庭28号1单元",
        "parts": {"compound": "枫康庭", "building": "28", "unit": "1"},
        "address": "枫康庭28号1单元",
        "complaint": "",
    },
    {
        "text": "景玉府A座",
        "parts": {"compound": "景玉府", "building": "A"},
        "address": "景玉府A座",
        "complaint": "",
    },
    {
        "text": "景玉府3A幢3楼",
        "parts": {"compound": "景玉府", "building": "3A", "floor": "3"},
        "address": "景玉府3A幢3楼",
        "complaint": "",
    },
    {
        "text": "金湖花园5幢",
        "parts": {"compound": "金湖花园", "building": "5"},
        "address": "金湖花园5幢",
        "complaint": "",
    },
    {
        "text": "新翠居4-402漏水",  # three digits after the dash: a room
        "parts": {"compound": "新翠居", "building": "4", "room": "402"},
        "address": "新翠居4-402",
        "complaint": "漏水",
    },
    {
        "text": "新翠居4幢2-501",
        "parts": {"compound": "新翠居", "building": "4", "unit": "2", "room": "501"},
        "address": "新翠居4幢2-501",
        "complaint": "",
    },
    {
        "text": "新翠居东区4栋",  # a part of the compound, not a direction
        "parts": {"compound": "新翠居", "building": "4"},
        "address": "新翠居东区4栋",
        "complaint": "",
    },
    {
        "text": "新翠居二期十号楼",
        "parts": {"compound": "新翠居", "building": "10"},
        "address": "新翠居二期十号楼",
        "complaint": "",
    },
    {
        "text": "新翠居4棟3單元",  # traditional forms
        "parts": {"compound": "新翠居", "building": "4", "unit": "3"},
        "address": "新翠居4棟3單元",
        "complaint": "",
    },
    {
        "text": "新翠居第四栋第二单元",  # ordinals
        "parts": {"compound": "新翠居", "building": "4", "unit": "2"},
        "address": "新翠居第四栋第二单元",
        "complaint": "",
    },
    {
        "text": "新翠居04栋",  # leading zeros
        "parts": {"compound": "新翠居", "building": "4"},
        "address": "新翠居04栋",
        "complaint": "",
    },
    # House numbers: 附号, 甲, lanes, no 号.
    {
        "text": "淞江路19有人占道",
        "parts": {"road": "淞江路", "number": "19"},
        "address": "淞江路19",
        "complaint": "有人占道",
    },
    {
        "text": "淞江路19号附1号",
        "parts": {"road": "淞江路", "number": "19-1"},
        "address": "淞江路19号附1号",
        "complaint": "",
    },
    {
        "text": "淞江路十九号甲门口",
        "parts": {"road": "淞江路", "number": "19甲"},
        "address": "淞江路十九号甲",
        "complaint": "门口",
    },
    {
        "text": "淞江路19弄3号",
        "parts": {"road": "淞江路", "number": "19", "lane": "19", "building": "3"},
        "address": "淞江路19弄3号",
        "complaint": "",
    },
    # Intersections in other wordings.
    {
        "text": "投诉：方洲路星海路路口红绿灯坏了",
        "parts": {"road": "方洲路", "road2": "星海路"},
        "address": "方洲路星海路路口",
        "complaint": "红绿灯坏了",
    },
    {
        "text": "星海路和湖东大道交汇处积水",
        "parts": {"road": "星海路", "road2": "湖东大道"},
        "address": "星海路和湖东大道交汇处",
        "complaint": "积水",
    },
    {
        "text": "星海路近湖东大道井盖缺失",
        "parts": {"road": "星海路", "road2": "湖东大道"},
        "address": "星海路近湖东大道",
        "complaint": "井盖缺失",
    },
    # POIs and relative phrases.
    {
        "text": "星海小学东侧绿化带",
        "parts": {"poi": "星海小学"},
        "address": "星海小学东侧",
        "complaint": "绿化带",
        "relative": ("east", "widened", 20.0),
    },
    {
        "text": "星海实验小学附近50米有人烧烤",
        "parts": {"poi": "星海实验小学"},
        "address": "星海实验小学附近50米",
        "complaint": "有人烧烤",
        "relative": ("near", "widened", 50.0),
    },
    {
        "text": "星海小学往北100米路灯不亮",
        "parts": {"poi": "星海小学"},
        "address": "星海小学往北100米",
        "complaint": "路灯不亮",
        "relative": ("north", "moved", 100.0),
    },
    {
        "text": "新翠居对面有人乱停车",
        "parts": {"compound": "新翠居"},
        "address": "新翠居对面",
        "complaint": "有人乱停车",
        "relative": ("opposite", "widened", 60.0),
    },
    {
        "text": "新翠居4栋旁边有人烧烤",
        "parts": {"compound": "新翠居", "building": "4"},
        "address": "新翠居4栋旁边",
        "complaint": "有人烧烤",
        "relative": ("near", "widened", 20.0),
    },
    # Unknown names kept for typo tolerance; preambles skipped.
    {
        "text": "新萃居4栋楼下",
        "parts": {"compound_text": "新萃居", "building": "4"},
        "address": "新萃居4栋",
        "complaint": "楼下",
    },
    {
        "text": "松江路19号",
        "parts": {"road_text": "松江路", "number": "19"},
        "address": "松江路19号",
        "complaint": "",
    },
    {
        "text": "我家在新翠居十二栋三楼漏水",
        "parts": {"compound": "新翠居", "building": "12", "floor": "3"},
        "address": "新翠居十二栋三楼",
        "complaint": "漏水",
    },
    # Areas alone, and no place at all.
    {
        "text": "翠湖社区附近",
        "parts": {"community": "翠湖社区"},
        "address": "翠湖社区附近",
        "complaint": "",
        "relative": ("near", "widened", 100.0),
    },
    {
        "text": "楼下垃圾堆放没人管",
        "parts": {},
        "address": "",
        "complaint": "楼下垃圾堆放没人管",
    },
)

# Against the demo street (seed 20240920, its gazetteer): what the matcher answers. `name` is
# the place's name (a building's: its address ends with it); `confident`: at or above 0.85.
DEMO_CASES = (
    {
        "text": "园区新翠居4栋楼下垃圾堆放",
        "precision": "building",
        "name": "新翠居4幢",
        "confident": True,
    },
    {
        "text": "苏州园区新翠居小区四栋",
        "precision": "building",
        "name": "新翠居4幢",
        "confident": True,
    },
    {
        "text": "凤里街103号枫康庭28-1",
        "precision": "building",
        "name": "枫康庭28幢",
        "confident": True,
    },
    {
        "text": "淞江路19号新翠居4幢",
        "precision": "building",
        "name": "新翠居4幢",
        "confident": True,
    },
    {"text": "景玉府9号楼2单元", "precision": "building", "name": "景玉府9幢", "confident": True},
    {"text": "淞江路19号4幢", "precision": "building", "name": "新翠居4幢", "confident": True},
    {
        "text": "淞江路19号门口",
        "precision": "house_number",
        "name": "淞江路19号",
        "confident": True,
    },
    # A building number the register lacks: the compound answers, not another building.
    {"text": "景玉府99幢", "precision": "compound", "name": "景玉府", "confident": True},
    {"text": "景玉府小区", "precision": "compound", "name": "景玉府", "confident": True},
    # A compound at its own house number: the compound, confirmed by the plate.
    {"text": "淞江路19号新翠居", "precision": "compound", "name": "新翠居", "confident": True},
    {"text": "淞江路19号新翠居44幢", "precision": "compound", "name": "新翠居", "confident": True},
    # The compound named at another compound's number: the compound and its building win.
    {"text": "锦绣路123号宁和庄", "precision": "compound", "name": "宁和庄", "confident": True},
    {
        "text": "锦绣路123号宁和庄3幢",
        "precision": "building",
        "name": "宁和庄3幢",
        "confident": True,
    },
    {
        "text": "锦绣路129号宁和庄",
        "precision": "compound",
        "name": "宁和庄",
        "confident": True,
    },
    # A house number the road lacks: the road answers (never another plate).
    {"text": "淞江路999号门口", "precision": "road", "name": "淞江路", "confident": True},
    # A street the gazetteer does not have: found, never confident.
    {"text": "郭巷街道新翠居4栋", "precision": "building", "name": "新翠居4幢", "confident": False},
    # Near-homophone: found, never confident.
    {"text": "新萃居4栋", "precision": "building", "name": "新翠居4幢", "confident": False},
    {"text": "松江路", "precision": "road", "name": "淞江路", "confident": False},
    # Crossings: one the street has, one it has not (方洲路 and 星海路 do not meet there).
    {
        "text": "星海路与翠微街交叉口有人占道",
        "precision": "intersection",
        "name": "星海路与翠微街交叉口",
        "confident": True,
    },
    {
        "text": "星海街翠微路路口",
        "precision": "intersection",
        "name": "星海路与翠微街交叉口",
        "confident": True,
    },
    {
        "text": "方洲路与星海路交叉口有人占道",
        "precision": "road",
        "name": "方洲路",
        "confident": False,
    },
    {"text": "星海小学东侧绿化带", "precision": "poi", "name": "星海小学", "confident": True},
    {"text": "地铁兰亭路站附近", "precision": "poi", "name": "兰亭路站", "confident": True},
    {"text": "湖东大道", "precision": "road", "name": "湖东大道", "confident": True},
    {
        "text": "市民反映星港社区路灯不亮",
        "precision": "community",
        "name": "星港社区",
        "confident": True,
    },
)

# Texts with no answer, and why.
NO_ANSWER_CASES = (
    ("", "empty"),
    ("   ", "empty"),
    ("楼下垃圾堆放没人管", "no_place"),
    ("火星基地九十九号", "not_found"),
    # Our names under another province, city or county: not our place.
    ("上海市浦东新区新翠居4栋", "not_found"),
    ("浙江省杭州市西湖区淞江路19号门口", "not_found"),
    ("x" * 501, "too_long"),
)
