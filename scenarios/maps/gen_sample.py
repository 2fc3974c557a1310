#!/usr/bin/env python3
"""Generate the fictional sample city and its roster.

Writes, next to this script:
- sample-city.geojson: 1 city, 2 districts, 4 streets, 8 communities and
  32 grids (polygons that tile their parent exactly), plus one Party-mass
  service centre (党群服务中心) per street and per community (points).
- sample-roster.csv: 10 people per grid (320 in all).

Plain Python 3, standard library only. The output depends only on SEED, so
running the script again reproduces the same files byte for byte.

Usage: python3 scenarios/maps/gen_sample.py
"""

import csv
import json
import math
import os
import random

SEED = 20240611
DECIMALS = 6

# The city is a 12 km x 10 km box centred on (120.15, 30.27).
CENTRE_LON = 120.15
CENTRE_LAT = 30.27
WIDTH_KM = 12.0
HEIGHT_KM = 10.0
KM_PER_DEGREE_LAT = 110.95
KM_PER_DEGREE_LON = 111.32 * math.cos(math.radians(CENTRE_LAT))

HERE = os.path.dirname(os.path.abspath(__file__))
GEOJSON_PATH = os.path.join(HERE, "sample-city.geojson")
ROSTER_PATH = os.path.join(HERE, "sample-roster.csv")

CITY_NAME = "明湖市"
DISTRICT_NAMES = ["东湖区", "西岭区"]
STREET_NAMES = ["湖滨街道", "桂园街道", "松岗街道", "云溪街道"]
COMMUNITY_NAMES = [
    "柳岸社区", "荷塘社区", "杏林社区", "竹韵社区",
    "枫桥社区", "梅坞社区", "兰亭社区", "石泉社区",
]
GRIDS_PER_COMMUNITY = 4
PEOPLE_PER_GRID = 10

SURNAMES = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
    "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "高", "罗",
    "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
]
GIVEN_NAMES = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋",
    "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "华", "慧",
    "建国", "建华", "玉兰", "桂英", "志强", "海燕", "晓东", "丽娟", "文杰", "子涵",
    "雨欣", "浩然", "思远", "嘉怡", "俊杰", "欣怡", "一鸣", "佳琪", "国强", "春梅",
]

SKILLS = [
    "first_aid", "elder_care", "rescue", "electrician", "driving",
    "counselling", "translation", "firefighting", "plumbing", "nursing",
]
# Chance of each skill other than first aid, by role; first aid is handled
# separately so that about a third of the roster has it.
BASE_SKILL_CHANCE = {
    "elder_care": 0.08, "rescue": 0.05, "electrician": 0.04, "driving": 0.10,
    "counselling": 0.05, "translation": 0.03, "firefighting": 0.04,
    "plumbing": 0.03, "nursing": 0.04,
}
ROLE_SKILL_BOOST = {
    "community_worker": {"elder_care": 0.15, "counselling": 0.12},
    "grid_leader": {"elder_care": 0.10, "counselling": 0.08},
    "sunk_cadre": {"driving": 0.30, "counselling": 0.08},
    "property_staff": {"electrician": 0.30, "plumbing": 0.30, "firefighting": 0.10},
    "volunteer": {"rescue": 0.06, "nursing": 0.04},
    "new_employment": {"driving": 0.10},
}
FIRST_AID_CHANCE = {
    "community_worker": 0.50, "grid_leader": 0.45, "building_leader": 0.35,
    "volunteer": 0.35, "property_staff": 0.35,
}
DEFAULT_FIRST_AID_CHANCE = 0.28

# The mix of people filling the places left in a grid after the grid
# leader, building leaders and community workers.
OTHER_ROLE_WEIGHTS = [
    ("registered_member", 30),
    ("volunteer", 28),
    ("unit_leader", 10),
    ("new_employment", 9),
    ("sunk_cadre", 8),
    ("property_staff", 8),
    ("owners_committee", 7),
]
ON_DUTY_CHANCE = {
    "community_worker": 0.90, "grid_leader": 0.85, "building_leader": 0.65,
    "property_staff": 0.70,
}
DEFAULT_ON_DUTY_CHANCE = 0.40


def rounded(value):
    return round(value, DECIMALS)


def city_box():
    half_width = WIDTH_KM / 2 / KM_PER_DEGREE_LON
    half_height = HEIGHT_KM / 2 / KM_PER_DEGREE_LAT
    return (
        rounded(CENTRE_LON - half_width), rounded(CENTRE_LAT - half_height),
        rounded(CENTRE_LON + half_width), rounded(CENTRE_LAT + half_height),
    )


def split_box(rng, box, axis):
    """Split a box in two along axis 0 (west|east) or 1 (south|north).

    The cut is rounded once and used by both halves, so they share the border
    exactly and together cover the parent with no gap or overlap.
    """
    min_x, min_y, max_x, max_y = box
    fraction = rng.uniform(0.35, 0.65)
    if axis == 0:
        cut = rounded(min_x + (max_x - min_x) * fraction)
        return [(min_x, min_y, cut, max_y), (cut, min_y, max_x, max_y)]
    cut = rounded(min_y + (max_y - min_y) * fraction)
    return [(min_x, min_y, max_x, cut), (min_x, cut, max_x, max_y)]


def split_in_four(rng, box, first_axis):
    """Four pieces: halve along one axis, then each half along the other axis
    at its own fraction, so the pieces are not a regular 2 x 2 grid."""
    pieces = []
    for half in split_box(rng, box, first_axis):
        pieces.extend(split_box(rng, half, 1 - first_axis))
    return pieces


def ring_of(box, corners_of_neighbours):
    """Counter-clockwise closed ring of a box.

    Corners of same-level neighbours that lie on an edge (T-junctions) are
    inserted as vertices, so two areas sharing a border carry the same
    vertices along it.
    """
    min_x, min_y, max_x, max_y = box
    corners = [(min_x, min_y), (max_x, min_y), (max_x, max_y), (min_x, max_y)]
    ring = []
    for index, start in enumerate(corners):
        end = corners[(index + 1) % 4]
        ring.append(start)
        between = []
        for point in corners_of_neighbours:
            if start[0] == end[0] == point[0]:
                low, high = sorted((start[1], end[1]))
                if low < point[1] < high:
                    between.append(point)
            elif start[1] == end[1] == point[1]:
                low, high = sorted((start[0], end[0]))
                if low < point[0] < high:
                    between.append(point)
        # Order the inserted points along the direction of travel.
        between.sort(key=lambda p: abs(p[0] - start[0]) + abs(p[1] - start[1]))
        ring.extend(between)
    ring.append(ring[0])
    return [[x, y] for x, y in ring]


def signed_area(ring):
    total = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:]):
        total += x1 * y2 - x2 * y1
    return total / 2


def point_inside(rng, box, margin_fraction):
    """A random point strictly inside a box, kept off its border by a margin
    so that rounding to 6 decimals cannot put it on the border."""
    min_x, min_y, max_x, max_y = box
    margin_x = (max_x - min_x) * margin_fraction
    margin_y = (max_y - min_y) * margin_fraction
    lon = rounded(rng.uniform(min_x + margin_x, max_x - margin_x))
    lat = rounded(rng.uniform(min_y + margin_y, max_y - margin_y))
    assert min_x < lon < max_x and min_y < lat < max_y
    return lon, lat


def build_areas(rng):
    """All areas, parents before children: dicts with id, name, level,
    parent and box."""
    city = {"id": "city", "name": CITY_NAME, "level": "city", "parent": "", "box": city_box()}
    areas = [city]
    district_boxes = split_box(rng, city["box"], 0)
    street_index = 0
    community_index = 0
    for district_number, district_box in enumerate(district_boxes, start=1):
        district = {
            "id": f"d{district_number}",
            "name": DISTRICT_NAMES[district_number - 1],
            "level": "district",
            "parent": city["id"],
            "box": district_box,
        }
        areas.append(district)
        for street_number, street_box in enumerate(split_box(rng, district_box, 1), start=1):
            street = {
                "id": f"{district['id']}-s{street_number}",
                "name": STREET_NAMES[street_index],
                "level": "street",
                "parent": district["id"],
                "box": street_box,
            }
            street_index += 1
            areas.append(street)
            for community_number, community_box in enumerate(
                split_box(rng, street_box, 0), start=1
            ):
                community_name = COMMUNITY_NAMES[community_index]
                community = {
                    "id": f"{street['id']}-c{community_number}",
                    "name": community_name,
                    "level": "community",
                    "parent": street["id"],
                    "box": community_box,
                }
                community_index += 1
                areas.append(community)
                grid_boxes = split_in_four(rng, community_box, 1)
                assert len(grid_boxes) == GRIDS_PER_COMMUNITY
                for grid_number, grid_box in enumerate(grid_boxes, start=1):
                    areas.append({
                        "id": f"{community['id']}-g{grid_number}",
                        "name": f"{community_name}第{grid_number}网格",
                        "level": "grid",
                        "parent": community["id"],
                        "box": grid_box,
                    })
    return areas


def build_service_centres(rng, areas):
    centres = []
    for area in areas:
        if area["level"] not in ("street", "community"):
            continue
        lon, lat = point_inside(rng, area["box"], 0.2)
        centres.append({
            "id": f"{area['id']}-sc",
            "name": f"{area['name']}党群服务中心",
            "parent": area["id"],
            "lon": lon,
            "lat": lat,
        })
    return centres


def check_tiling(areas):
    """Children cover their parent exactly: same bounding box, areas sum."""
    by_id = {area["id"]: area for area in areas}
    for parent in areas:
        children = [area for area in areas if area["parent"] == parent["id"]]
        if not children:
            continue
        min_x, min_y, max_x, max_y = parent["box"]
        assert min(c["box"][0] for c in children) == min_x
        assert min(c["box"][1] for c in children) == min_y
        assert max(c["box"][2] for c in children) == max_x
        assert max(c["box"][3] for c in children) == max_y
        parent_area = (max_x - min_x) * (max_y - min_y)
        children_area = sum((c["box"][2] - c["box"][0]) * (c["box"][3] - c["box"][1]) for c in children)
        assert abs(parent_area - children_area) < 1e-12, parent["id"]
    assert all(area["parent"] == "" or area["parent"] in by_id for area in areas)


def write_geojson(areas, centres):
    corners_by_level = {}
    for area in areas:
        min_x, min_y, max_x, max_y = area["box"]
        corners_by_level.setdefault(area["level"], set()).update(
            [(min_x, min_y), (max_x, min_y), (max_x, max_y), (min_x, max_y)]
        )
    features = []
    for area in areas:
        ring = ring_of(area["box"], sorted(corners_by_level[area["level"]]))
        assert ring[0] == ring[-1]
        assert signed_area(ring) > 0, "exterior ring must be counter-clockwise"
        features.append({
            "type": "Feature",
            "properties": {
                "id": area["id"],
                "name": area["name"],
                "level": area["level"],
                "parent": area["parent"],
            },
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        })
    for centre in centres:
        features.append({
            "type": "Feature",
            "properties": {
                "id": centre["id"],
                "name": centre["name"],
                "level": "service_centre",
                "parent": centre["parent"],
            },
            "geometry": {"type": "Point", "coordinates": [centre["lon"], centre["lat"]]},
        })
    ids = [feature["properties"]["id"] for feature in features]
    assert len(ids) == len(set(ids)), "feature ids must be unique"
    collection = {"type": "FeatureCollection", "features": features}
    with open(GEOJSON_PATH, "w", encoding="utf-8", newline="\n") as out:
        # One feature per line: readable, and diffs stay small.
        out.write('{"type": "FeatureCollection", "features": [\n')
        lines = [json.dumps(feature, ensure_ascii=False) for feature in collection["features"]]
        out.write(",\n".join(lines))
        out.write("\n]}\n")


def roles_for_community(rng):
    """Roles of the people of one community, one list per grid."""
    # About two community workers per grid, at least one in each.
    workers_total = rng.randint(7, 9)
    workers = [1] * GRIDS_PER_COMMUNITY
    for _ in range(workers_total - GRIDS_PER_COMMUNITY):
        workers[rng.randrange(GRIDS_PER_COMMUNITY)] += 1
    other_roles = [role for role, _ in OTHER_ROLE_WEIGHTS]
    other_weights = [weight for _, weight in OTHER_ROLE_WEIGHTS]
    per_grid = []
    for grid_index in range(GRIDS_PER_COMMUNITY):
        roles = ["grid_leader"]
        roles += ["building_leader"] * rng.randint(1, 2)
        roles += ["community_worker"] * workers[grid_index]
        while len(roles) < PEOPLE_PER_GRID:
            roles.append(rng.choices(other_roles, other_weights)[0])
        assert len(roles) == PEOPLE_PER_GRID
        per_grid.append(roles)
    return per_grid


def skills_for(rng, role):
    chosen = []
    if rng.random() < FIRST_AID_CHANCE.get(role, DEFAULT_FIRST_AID_CHANCE):
        chosen.append("first_aid")
    boost = ROLE_SKILL_BOOST.get(role, {})
    for skill in SKILLS[1:]:
        if rng.random() < BASE_SKILL_CHANCE[skill] + boost.get(skill, 0.0):
            chosen.append(skill)
    if len(chosen) > 3:
        chosen = sorted(rng.sample(chosen, 3), key=SKILLS.index)
    return chosen


def travel_mode_for(rng, role):
    if role == "new_employment":
        return "bike"
    if role == "sunk_cadre":
        return rng.choices(["car", "bike", "walk"], [5, 2, 3])[0]
    return rng.choices(["walk", "bike", "car"], [6, 3, 1])[0]


def build_roster(rng, areas):
    grids = [area for area in areas if area["level"] == "grid"]
    communities = [area for area in areas if area["level"] == "community"]
    roles_by_grid = {}
    for community in communities:
        community_grids = [grid for grid in grids if grid["parent"] == community["id"]]
        for grid, roles in zip(community_grids, roles_for_community(rng)):
            roles_by_grid[grid["id"]] = roles
    people = []
    phones = set()
    for grid in grids:
        for role in roles_by_grid[grid["id"]]:
            phone = f"139{rng.randrange(10**8):08d}"
            while phone in phones:
                phone = f"139{rng.randrange(10**8):08d}"
            phones.add(phone)
            home_lon, home_lat = point_inside(rng, grid["box"], 0.02)
            people.append({
                "id": f"p{len(people) + 1:04d}",
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES),
                "role": role,
                "skills": ";".join(skills_for(rng, role)),
                "phone": phone,
                "home_area_id": grid["id"],
                "travel_mode": travel_mode_for(rng, role),
                "on_duty": "true" if rng.random() < ON_DUTY_CHANCE.get(role, DEFAULT_ON_DUTY_CHANCE) else "false",
                "home_lon": f"{home_lon:.6f}",
                "home_lat": f"{home_lat:.6f}",
            })
    return people


ROSTER_COLUMNS = [
    "id", "name", "role", "skills", "phone", "home_area_id",
    "travel_mode", "on_duty", "home_lon", "home_lat",
]


def write_roster(people):
    with open(ROSTER_PATH, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=ROSTER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(people)


def summary(areas, centres, people):
    lines = []
    for level in ("city", "district", "street", "community", "grid"):
        lines.append(f"{level}: {sum(1 for a in areas if a['level'] == level)}")
    lines.append(f"service_centre: {len(centres)}")
    lines.append(f"people: {len(people)}")
    roles = {}
    for person in people:
        roles[person["role"]] = roles.get(person["role"], 0) + 1
    for role, count in sorted(roles.items(), key=lambda item: -item[1]):
        lines.append(f"  {role}: {count}")
    on_duty = sum(1 for person in people if person["on_duty"] == "true")
    lines.append(f"on duty: {on_duty} ({on_duty / len(people):.1%})")
    first_aid = sum(1 for person in people if "first_aid" in person["skills"].split(";"))
    lines.append(f"first_aid: {first_aid} ({first_aid / len(people):.1%})")
    modes = {}
    for person in people:
        modes[person["travel_mode"]] = modes.get(person["travel_mode"], 0) + 1
    lines.append("travel modes: " + ", ".join(f"{mode} {count}" for mode, count in sorted(modes.items())))
    return "\n".join(lines)


def main():
    rng = random.Random(SEED)
    areas = build_areas(rng)
    check_tiling(areas)
    centres = build_service_centres(rng, areas)
    people = build_roster(rng, areas)
    write_geojson(areas, centres)
    write_roster(people)
    print(f"wrote {GEOJSON_PATH}")
    print(f"wrote {ROSTER_PATH}")
    print(summary(areas, centres, people))


if __name__ == "__main__":
    main()
